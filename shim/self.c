/* self.c - the calling thread's state for host-process safety (see
 * self.h). */
#include "self.h"

__thread struct dl_self dl_self __attribute__((tls_model("initial-exec"))) =
	{ .w.hold_fd = -1 };
int self_vm_clones;
void (*self_deferred_hook)(void);
pid_t self_pid;

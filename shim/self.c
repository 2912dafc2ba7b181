/* self.c - the calling thread's state for host-process safety (see
 * self.h). */
#include "self.h"

__thread struct dl_self dl_self __attribute__((tls_model("initial-exec"))) =
	{ .w.hold_fd = -1 };
int self_gate;
void (*self_deferred_hook)(void);
pid_t self_pid;

int self_outside_slow(void)
{
	if (dl_self.vfork_child)
		return 1;
	if (__atomic_load_n(&self_gate, __ATOMIC_RELAXED) & SELF_GATE_VM_CLONE)
		return getpid() != __atomic_load_n(&self_pid, __ATOMIC_RELAXED);
	return 0;
}

/* wrap_proc.c - process creation that shares the parent's memory: vfork
 * and clone(CLONE_VM).  The children run on the parent's memory until
 * they exec or exit; self.h's gate then sends their calls straight to
 * libc, so they never change the parent's tables, heap or holds.
 *
 * vfork cannot be wrapped by a C function: the child returns from it and
 * goes on using the stack below the caller's frame, which would clobber
 * the wrapper's own frame before the parent returns through it.  The
 * wrapper is a few instructions of assembly that keep the return address
 * in thread-local storage (shared with the child, which returns to the
 * same place), set self.vfork_child around the real vfork, and clear it
 * in the parent when the real vfork returns there.  posix_spawn and
 * glibc's own children call no exported function, so they need nothing.
 */
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/types.h>
#include <unistd.h>

#include "real.h"
#include "self.h"

#if defined(__x86_64__)

__thread void *self_vfork_ret __attribute__((tls_model("initial-exec")));

/* Before the real vfork: returns it; the calling thread (and with it the
 * child) is marked. */
void *self_vfork_prepare(void);
void *self_vfork_prepare(void)
{
	void *real = (void *)REAL(vfork);

	__atomic_add_fetch(&self_gate, SELF_GATE_VFORK, __ATOMIC_RELAXED);
	dl_self.vfork_child = 1;
	return real;
}

/* After the real vfork returned pid (0 in the child).  The parent runs
 * this only when the child has exec'd or exited: its memory is its own
 * again. */
void self_vfork_done(long pid);
void self_vfork_done(long pid)
{
	if (pid != 0) {
		dl_self.vfork_child = 0;
		__atomic_sub_fetch(&self_gate, SELF_GATE_VFORK,
				   __ATOMIC_RELAXED);
	}
}

__asm__(".text\n"
	".globl vfork\n"
	".type vfork, @function\n"
	"vfork:\n"
	"	sub $8, %rsp\n"
	"	call self_vfork_prepare\n"
	"	add $8, %rsp\n"
	"	mov %rax, %r11\n"
	"	movq self_vfork_ret@gottpoff(%rip), %rcx\n"
	"	popq %fs:(%rcx)\n"
	"	call *%r11\n"
	"	push %rax\n"
	"	sub $8, %rsp\n"
	"	mov %rax, %rdi\n"
	"	call self_vfork_done\n"
	"	add $8, %rsp\n"
	"	pop %rax\n"
	"	movq self_vfork_ret@gottpoff(%rip), %rcx\n"
	"	jmp *%fs:(%rcx)\n"
	".size vfork, .-vfork\n");

#endif

/* clone(): a child that shares memory without being a thread of this
 * process is told apart by its pid from then on. */
DL_EXPORT int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...)
{
	va_list ap;
	void *ptid, *tls, *ctid;

	va_start(ap, arg);
	ptid = va_arg(ap, void *);
	tls = va_arg(ap, void *);
	ctid = va_arg(ap, void *);
	va_end(ap);
	if ((flags & CLONE_VM) && !(flags & CLONE_THREAD))
		__atomic_or_fetch(&self_gate, SELF_GATE_VM_CLONE,
				  __ATOMIC_RELAXED);
	return REAL(clone)(fn, stack, flags, arg, ptid, tls, ctid);
}

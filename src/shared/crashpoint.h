/* crashpoint.h — named points where tests make the daemon die as `kill -9`
 * would, to prove that a crash at any step of an attach loses and leaks
 * nothing.  Inert unless XEN_LOOPD_CRASH_AT names a directory: a point fires
 * when <dir>/<point>.armed exists, once (it becomes <point>.fired), so a
 * test arms exactly the crash it wants and the restarted daemon runs on.
 * A point stops the daemon instead (SIGSTOP) when <dir>/<point>.stop exists,
 * once (it becomes <point>.stopped): the test changes the world under a
 * daemon frozen at that step, then sends SIGCONT.
 *
 * Points: after-open (the backing file is open, nothing set up yet),
 * after-configure (the loop device is set up, not published), after-publish. */
#pragma once

/* Compiled in only where XEN_LOOPD_CRASHPOINTS is defined: the test build
 * of the daemon (xen-loopd-crash), never the installed one, which carries
 * neither the code nor the environment variable's name. */
#ifdef XEN_LOOPD_CRASHPOINTS
void crashpoint(const char *name);
#else
#define crashpoint(name) do { } while (0)
#endif

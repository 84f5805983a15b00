/* crashpoint.h — named points where tests make the daemon die as `kill -9`
 * would, to prove that a crash at any step of an attach loses and leaks
 * nothing.  Inert unless XEN_LOOPD_CRASH_AT names a directory: a point fires
 * when <dir>/<point>.armed exists, once (it becomes <point>.fired), so a
 * test arms exactly the crash it wants and the restarted daemon runs on. */
#pragma once

void crashpoint(const char *name);

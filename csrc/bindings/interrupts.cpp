// Ctrl-C and time limits for the Python module.
//
// A call on the main thread sees Ctrl-C through its poll (common.h,
// Interruptible). A call on another thread (a thread pool's, a server's) never
// runs Python's handlers, so the module also chains a C-level SIGINT handler
// in front of Python's: it stops every running call (InterruptAllCalls, one
// atomic increment) and hands the signal on, so KeyboardInterrupt is raised in
// the main thread as before. annlib/__init__.py chains it only while Python's
// default SIGINT handler (which always raises KeyboardInterrupt) is installed;
// Python-level handlers are untouched (signal.getsignal still returns
// Python's), and a program that installs its own SIGINT handler later
// replaces the chain, keeping only the main-thread poll.
#include <pybind11/pybind11.h>

#include <csignal>
#ifndef _WIN32
#include <pthread.h>
#endif

#include "../util/cancel.h"
#include "../util/rw_lock.h"
#include "common.h"

namespace annlib_bindings {
namespace {

#ifndef _WIN32
struct sigaction g_previous;

void OnSigint(int sig, siginfo_t* info, void* context) {
  annlib::InterruptAllCalls();
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction != nullptr) g_previous.sa_sigaction(sig, info, context);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN &&
             g_previous.sa_handler != nullptr) {
    g_previous.sa_handler(sig);
  }
}

// Chains OnSigint in front of the installed handler, when that is a function
// (Python's, normally); SIG_IGN and SIG_DFL are left alone.
void ChainSigint() {
  struct sigaction current;
  if (sigaction(SIGINT, nullptr, &current) != 0) return;
  const bool function = (current.sa_flags & SA_SIGINFO) ? current.sa_sigaction != nullptr
                                                        : (current.sa_handler != SIG_DFL && current.sa_handler != SIG_IGN);
  if (!function) return;
  g_previous = current;
  struct sigaction chained = current;
  chained.sa_flags = (current.sa_flags | SA_SIGINFO) & ~SA_RESETHAND;
  chained.sa_sigaction = &OnSigint;
  sigaction(SIGINT, &chained, nullptr);
}
#else
void ChainSigint() {}
#endif

unsigned long g_main_thread = 0;  // Python's main thread, as PyThread_get_thread_ident says

// A thread that waits for an index lock lets go of the GIL meanwhile: the
// thread holding the lock may be a call whose poll needs the GIL.
void* ReleaseGilIfHeld() { return PyGILState_Check() ? PyEval_SaveThread() : nullptr; }
void RetakeGil(void* state) {
  if (state != nullptr) PyEval_RestoreThread(static_cast<PyThreadState*>(state));
}

}  // namespace

bool OnMainThread() { return PyThread_get_thread_ident() == g_main_thread; }

void RegisterInterrupts(py::module_& m) {
  annlib::lock_wait_hooks() = annlib::LockWaitHooks{&ReleaseGilIfHeld, &RetakeGil};
  // The module may be imported on another thread: ask threading which one is main.
  g_main_thread = py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
#ifndef _WIN32
  // A fork's child continues on the forking thread alone, which Python makes its main thread.
  pthread_atfork(nullptr, nullptr, [] { g_main_thread = PyThread_get_thread_ident(); });
#endif
  m.def("chain_sigint", &ChainSigint,
        "puts a C-level SIGINT handler in front of the installed one that also stops every running annlib call "
        "(annlib/__init__.py calls it when Python's default SIGINT handler is installed)");
  m.def("interrupt_all", &annlib::InterruptAllCalls,
        "stops every annlib call running now (they raise KeyboardInterrupt)");
  m.def("set_thread_deadline", &annlib::SetThreadDeadline, py::arg("seconds"),
        "time limit (seconds, < 0 = none) for the calls this thread starts; returns the previous one's remaining "
        "seconds (< 0 = none)");
}

}  // namespace annlib_bindings

// A floor under the stack size of threads that libraries start with a fixed small stack.
//
// Debian's civetweb (under prometheus-cpp's Exposer) starts its threads with a 100 KiB stack
// (compiled in, no option). glibc places a thread's static TLS inside its stack, and the Torch
// and CUDA libraries in this process bring more static TLS than that: pthread_create fails with
// EINVAL before any system call, civetweb says only "Cannot create threads", and the metrics
// endpoint cannot start (seen on this machine and on the GPU machine). This definition, exported
// from the executable (see launcher/CMakeLists.txt), comes first in symbol lookup and raises such
// requests to kMinThreadStack; every other request passes unchanged to glibc.
#include <dlfcn.h>
#include <pthread.h>

#include <algorithm>
#include <cstddef>

namespace {

constexpr size_t kMinThreadStack = size_t{2} << 20;  // 2 MiB: Torch's TLS plus a working stack

using SetStackSize = int (*)(pthread_attr_t*, size_t);

}  // namespace

extern "C" int pthread_attr_setstacksize(pthread_attr_t* attr, size_t size) {
  static const auto glibc = reinterpret_cast<SetStackSize>(dlsym(RTLD_NEXT, "pthread_attr_setstacksize"));
  return glibc(attr, std::max(size, kMinThreadStack));
}

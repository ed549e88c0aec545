// Threads for per-sample work (decoding, resizing) whose torch ops run on each thread alone.
//
// A new thread's torch ops take the process-wide intra-op thread count, and each thread that
// calls a parallel op gets an OpenMP team of its own: W workers in a process of T intra-op
// threads make W teams of T on the same cores, spinning after every small per-image op
// (measured: the normalisation ops of one 128x128 image 5.7x slower in a worker of a process of 8
// threads; bench/RESULTS.md).
#pragma once

#include <functional>
#include <thread>
#include <vector>

namespace trainguard {

// Starts `count` threads running `work`, each with an intra-op thread count of 1, and returns
// once all of them have it, with the process-wide count (what threads started later begin with)
// and the calling thread's own as they were. The caller joins the threads.
std::vector<std::thread> StartWorkerThreads(int count, const std::function<void()>& work);

}  // namespace trainguard

#include "engine/memory.h"

#include <cstdlib>
#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

extern char** environ;

namespace tx {

// glibc's defaults hand a pass's large buffers back to the system when they
// are freed (mmapped blocks above a moving threshold; whole per-thread heaps
// once their top is free), so the next pass faults the same megabytes in
// again: 6,000 page faults per LayerGradCam call on 64 images of the residual
// bench net, and a median call of 90-110 ms against 43 ms with the memory
// kept. Blocks up to 32 MiB (glibc's most) now come from the arenas, and free
// memory stays there (a thread's heap keeps 64 MiB of free top). The process
// keeps the high-water mark of its passes; streams call
// release_free_memory() between chunks to give it back.
void tune_allocator() {
#if defined(__GLIBC__)
  for (char** e = environ; e && *e; ++e)
    if (std::strncmp(*e, "MALLOC_", 7) == 0 || std::strncmp(*e, "GLIBC_TUNABLES=", 15) == 0) return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_TOP_PAD, 64 << 20);
#endif
}

// glibc keeps what a thread freed in that thread's arena, for the next
// allocation; each request worker and intra-op thread has its own, so a long
// stream of large requests (a training set read chunk by chunk) left a
// chunk's garbage in each and the process grew by 130 MiB to 1.1 GiB over the
// same 586 MiB stream. Streams hand it back between chunks. Not done after
// every request: a lone IG call's median went from 7 to 33-56 ms when its
// working memory had to be faulted in afresh each time.
void release_free_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace tx

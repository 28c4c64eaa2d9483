// Process memory: how freed heap is kept for reuse and handed back.
#pragma once

namespace tx {

// Keeps freed working memory of passes for the next pass (glibc): called once
// when the request pool starts. Leaves the allocator as it is when the user
// set any MALLOC_* tunable.
void tune_allocator();

// Hands freed heap memory back to the system (glibc: every thread's arena).
void release_free_memory();

}  // namespace tx

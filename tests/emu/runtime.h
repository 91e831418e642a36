// A CPU emulator of the CUDA execution model, just enough for recmaml's kernels (tests only; the
// Device in tests/emu/mod.rs). The kernel program (kernels/*.cu, as NVRTC compiles it) is compiled with
// this header by the host C++ compiler. Each block runs on one OS thread; its threads are
// fibers (ucontext) that switch only at barriers, so a block runs deterministically:
//   __syncthreads()     waits until every live thread of the block has arrived;
//   __shfl_xor_sync()   waits until the 32 lanes of the warp have posted their value, reads the
//                       partner's, then waits again before the slots are reused.
// A barrier that can never complete (a __syncthreads some threads skip, a shuffle under
// divergence) is reported as an error instead of hanging. Blocks of a grid run one after
// the other, so the kernels' cross-block assumptions (none besides launch order) hold.
// Threads run in index order between barriers, or in reverse order (rm_emu_order): a kernel
// whose results depend on the order has a race. Dynamic shared memory is filled with NaN at the start of each block, like the GPU checks'
// poisoned buffers. Not emulated: memory ordering, races (every interleaving here is one
// barrier-respecting schedule), fast-math intrinsics, atomics.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <string>
#include <memory>
#include <vector>

#define __device__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(...)

struct rm_dim3 {
    unsigned x, y, z;
};
struct alignas(16) float4 {
    float x, y, z, w;
};

namespace rm_emu {

struct Fiber {
    ucontext_t ctx;
    rm_dim3 tid;
    int state;  // 0 runnable, 1 waiting at the block barrier, 2 waiting at its warp's, 3 done,
                // 4 stopped by an error
};

// A block's dynamic shared memory: `bytes` (rounded up to 16) that end where an inaccessible
// page begins, with another before them, so an access past either end faults (SIGSEGV, reported
// with the kernel, block and thread) instead of reading a neighbour's memory.
struct GuardedSmem {
    void* map = nullptr;
    size_t len = 0, floats = 0;
    float* data = nullptr;
    explicit GuardedSmem(size_t bytes) {
        const size_t page = (size_t)sysconf(_SC_PAGESIZE);
        const size_t need = (bytes + 15) / 16 * 16;
        const size_t body = (need + page - 1) / page * page;
        len = body + 2 * page;
        map = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (map == MAP_FAILED) {
            map = nullptr;
            return;
        }
        char* c = (char*)map;
        // Without both guards an overrun would go unnoticed: no buffer then (the launch fails).
        if (mprotect(c, page, PROT_NONE) != 0 || mprotect(c + page + body, page, PROT_NONE) != 0)
            return;
        data = (float*)(c + page + body - need);
        floats = need / 4;
    }
    // Every float NaN (an element read before any thread wrote it shows up in the results).
    void poison() {
        const uint32_t bits = 0xffffffffu;
        float nan;
        memcpy(&nan, &bits, 4);
        for (size_t i = 0; i < floats; ++i) data[i] = nan;
    }
    ~GuardedSmem() {
        if (map) munmap(map, len);
    }
    GuardedSmem(const GuardedSmem&) = delete;
    GuardedSmem& operator=(const GuardedSmem&) = delete;
};

struct Block {
    ucontext_t sched;
    std::vector<Fiber> fibers;
    char* stacks = nullptr;  // malloc'd, never zeroed (only the touched pages get memory)
    size_t stacks_len = 0;
    size_t stack_size = 0;
    unsigned cur = 0, live = 0;
    unsigned bar_arrived = 0;
    const char* bar_file = nullptr;  // where the current generation's first thread arrived
    int bar_line = 0;
    std::vector<unsigned> warp_arrived, warp_live;
    std::vector<float> warp_slot;
    rm_dim3 bidx{0, 0, 0}, bdim{1, 1, 1}, gdim{1, 1, 1};
    std::unique_ptr<GuardedSmem> smem;  // dynamic shared memory
    void (*body)(void**) = nullptr;
    void** args = nullptr;
    std::string error;
    ~Block() { free(stacks); }
};

static thread_local Block* blk = nullptr;
// Threads run in index order between barriers, or in reverse (rm_emu_order): a kernel without
// races gives the same bytes either way.
static thread_local bool reverse_order = false;

inline void yield_to_scheduler() {
    Fiber& f = blk->fibers[blk->cur];
    swapcontext(&f.ctx, &blk->sched);
}

// Releases the threads waiting at the block barrier.
inline void release_block() {
    blk->bar_arrived = 0;
    for (Fiber& f : blk->fibers)
        if (f.state == 1) f.state = 0;
}

inline void release_warp(unsigned w) {
    blk->warp_arrived[w] = 0;
    const unsigned n = (unsigned)blk->fibers.size();
    for (unsigned i = w * 32; i < n && i < w * 32 + 32; ++i)
        if (blk->fibers[i].state == 2) blk->fibers[i].state = 0;
}

// Stops the current thread with `msg` (the block ends with that error).
inline void fail(const std::string& msg) {
    if (blk->error.empty()) blk->error = msg;
    blk->fibers[blk->cur].state = 4;
    yield_to_scheduler();
}

// A barrier at file:line. Every thread of one barrier generation must arrive at the same
// __syncthreads (CUDA leaves anything else undefined).
inline void syncthreads(const char* file, int line) {
    Block* b = blk;
    if (b->bar_arrived == 0) {
        b->bar_file = file;
        b->bar_line = line;
    } else if (b->bar_line != line || strcmp(b->bar_file, file) != 0) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "block %u: thread %u reached the __syncthreads at %s:%d while %u threads wait "
                 "at %s:%d",
                 b->bidx.x, b->cur, file, line, b->bar_arrived, b->bar_file, b->bar_line);
        fail(msg);
    }
    if (++b->bar_arrived == b->live) {
        release_block();
        return;
    }
    Fiber& f = b->fibers[b->cur];
    f.state = 1;
    yield_to_scheduler();
}

inline void syncwarp_internal() {
    Block* b = blk;
    const unsigned w = b->cur / 32;
    if (++b->warp_arrived[w] == b->warp_live[w]) {
        release_warp(w);
        return;
    }
    Fiber& f = b->fibers[b->cur];
    f.state = 2;
    yield_to_scheduler();
}

inline float shfl_xor(unsigned mask, float v, int lane_mask) {
    Block* b = blk;
    if (mask != 0xffffffffu) fail("__shfl_xor_sync with a partial mask");
    const unsigned w = b->cur / 32, lane = b->cur % 32;
    b->warp_slot[w * 32 + lane] = v;
    syncwarp_internal();
    const float r = b->warp_slot[w * 32 + (lane ^ (unsigned)lane_mask)];
    syncwarp_internal();
    return r;
}

inline void fiber_entry() {
    Block* b = blk;
    b->body(b->args);
    Fiber& f = b->fibers[b->cur];
    f.state = 3;
    b->live--;
    const unsigned w = b->cur / 32;
    b->warp_live[w]--;
    // An exited thread no longer holds back the others.
    if (b->live > 0 && b->bar_arrived == b->live) release_block();
    if (b->warp_live[w] > 0 && b->warp_arrived[w] == b->warp_live[w]) release_warp(w);
    // uc_link returns to the scheduler.
}

// Runs one block of `body` with `threads` fibers; false (and b.error) on a deadlock.
inline bool run_block(Block& b) {
    const unsigned n = b.bdim.x;
    b.fibers.assign(n, Fiber{});
    if (b.stacks_len < (size_t)n * b.stack_size) {
        free(b.stacks);
        b.stacks_len = (size_t)n * b.stack_size;
        b.stacks = static_cast<char*>(malloc(b.stacks_len));
    }
    b.live = n;
    b.bar_arrived = 0;
    const unsigned warps = (n + 31) / 32;
    b.warp_arrived.assign(warps, 0);
    b.warp_live.assign(warps, 0);
    b.warp_slot.assign(warps * 32, 0.0f);
    for (unsigned i = 0; i < n; ++i) b.warp_live[i / 32]++;
    for (unsigned i = 0; i < n; ++i) {
        Fiber& f = b.fibers[i];
        f.tid = rm_dim3{i, 0, 0};
        f.state = 0;
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = b.stacks + (size_t)i * b.stack_size;
        f.ctx.uc_stack.ss_size = b.stack_size;
        f.ctx.uc_link = &b.sched;
        makecontext(&f.ctx, fiber_entry, 0);
    }
    while (b.live > 0) {
        bool ran = false;
        for (unsigned j = 0; j < n; ++j) {
            const unsigned i = reverse_order ? n - 1 - j : j;
            if (b.fibers[i].state != 0) continue;
            b.cur = i;
            ran = true;
            swapcontext(&b.sched, &b.fibers[i].ctx);
            if (!b.error.empty()) return false;
        }
        if (!ran) {
            unsigned at_block = 0, at_warp = 0;
            for (const Fiber& f : b.fibers) {
                at_block += f.state == 1;
                at_warp += f.state == 2;
            }
            char msg[256];
            snprintf(msg, sizeof msg,
                     "deadlock in block %u: %u threads wait at __syncthreads, %u at a warp "
                     "shuffle, %u have exited",
                     b.bidx.x, at_block, at_warp, n - b.live);
            b.error = msg;
            return false;
        }
    }
    return b.error.empty();
}

}  // namespace rm_emu

#define threadIdx (rm_emu::blk->fibers[rm_emu::blk->cur].tid)
#define blockIdx (rm_emu::blk->bidx)
#define blockDim (rm_emu::blk->bdim)
#define gridDim (rm_emu::blk->gdim)

#define __syncthreads() rm_emu::syncthreads(__FILE__, __LINE__)
inline float __shfl_xor_sync(unsigned mask, float v, int lane_mask) {
    return rm_emu::shfl_xor(mask, v, lane_mask);
}
inline float __int_as_float(int x) {
    float f;
    memcpy(&f, &x, 4);
    return f;
}
inline float* rm_emu_dyn_smem() { return rm_emu::blk->smem->data; }

// CUDA's integer and float min / max overloads.
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline int min(int a, int b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline float max(float a, float b) { return fmaxf(a, b); }
inline float min(float a, float b) { return fminf(a, b); }

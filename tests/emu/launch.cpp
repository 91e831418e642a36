// The emulator's entry point (appended after the kernel program; see emu_runtime.h): one
// wrapper per kernel that unpacks cuLaunchKernel-style arguments (an array of pointers to each
// argument's value), and rm_emu_launch, which runs the grid block by block.
namespace rm_emu {

template <class T>
inline T arg(void** a, int i) {
    return *static_cast<T*>(a[i]);
}

static void k_transpose_out(void** a) {
    transpose_out(arg<Dims>(a, 0), arg<const float*>(a, 1), arg<float*>(a, 2));
}
static void k_task_forward(void** a) {
    task_forward(arg<TaskParams>(a, 0), arg<const float*>(a, 1), arg<const float*>(a, 2),
                 arg<const u32*>(a, 3), arg<const TaskDesc*>(a, 4), arg<const float*>(a, 5),
                 arg<float*>(a, 6), arg<float*>(a, 7), arg<float*>(a, 8));
}
static void k_task_backward(void** a) {
    task_backward(arg<TaskParams>(a, 0), arg<const float*>(a, 1), arg<const float*>(a, 2),
                  arg<const u32*>(a, 3), arg<const TaskDesc*>(a, 4), arg<const float*>(a, 5),
                  arg<float*>(a, 6), arg<float*>(a, 7));
}
static void k_meta_grad(void** a) {
    meta_grad_forward(arg<ReduceParams>(a, 0), arg<const u32*>(a, 1), arg<const TaskDesc*>(a, 2),
                      arg<const float*>(a, 3), arg<const float*>(a, 4), arg<float*>(a, 5),
                      arg<double*>(a, 6));
}
static void k_clip(void** a) {
    clip_forward(arg<AdamParams>(a, 0), arg<float*>(a, 1), arg<const float*>(a, 2),
                 arg<const float*>(a, 3), arg<double*>(a, 4));
}
static void k_adam(void** a) {
    adam_forward(arg<AdamParams>(a, 0), arg<float*>(a, 1), arg<const float*>(a, 2),
                 arg<float*>(a, 3), arg<float*>(a, 4), arg<const double*>(a, 5),
                 arg<double*>(a, 6));
}

// An invalid memory access during a launch on this OS thread jumps back to rm_emu_launch.
static thread_local sigjmp_buf fault_jmp;
static thread_local volatile sig_atomic_t in_launch = 0;
static thread_local volatile sig_atomic_t fault_sig = 0;

static void on_fault(int sig) {
    if (in_launch) {
        fault_sig = sig;
        in_launch = 0;
        siglongjmp(fault_jmp, 1);
    }
    signal(sig, SIG_DFL);  // not ours: the default action (the process ends as it would have)
    raise(sig);
}

// The handler, installed for the length of each launch (the previous one put back after it),
// on an alternate stack per thread (a fault may come from a fiber's small stack). Each test
// loads its own copy of this library: a handler installed once per process would belong to
// whichever copy came last, which may be another test's (whose in_launch is 0 here, so the
// fault would end the process) or one already unloaded. The Rust side runs one launch at a
// time in the process (`Emu::launch`), so the installed handler is always the launching
// copy's.
struct FaultHandler {
    struct sigaction old_segv, old_bus;
    FaultHandler() {
        static thread_local bool alt = false;
        if (!alt) {
            stack_t ss;
            ss.ss_size = 1 << 16;
            ss.ss_sp = malloc(ss.ss_size);
            ss.ss_flags = 0;
            sigaltstack(&ss, nullptr);
            alt = true;
        }
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_fault;
        sa.sa_flags = SA_ONSTACK | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, &old_segv);
        sigaction(SIGBUS, &sa, &old_bus);
    }
    ~FaultHandler() {
        sigaction(SIGSEGV, &old_segv, nullptr);
        sigaction(SIGBUS, &old_bus, nullptr);
    }
    FaultHandler(const FaultHandler&) = delete;
    FaultHandler& operator=(const FaultHandler&) = delete;
};

}  // namespace rm_emu

// Runs kernel `name` on `grid` blocks of `block` threads with `smem_bytes` of dynamic shared
// memory. Returns 0, or 1 with a message in err (an unknown kernel, a block size other than the
// compiled RM_BLOCK, a deadlock).
extern "C" int rm_emu_launch(const char* name, unsigned grid, unsigned block, unsigned smem_bytes,
                             void** args, char* err, unsigned long err_len) {
    using namespace rm_emu;
    struct Entry {
        const char* name;
        void (*body)(void**);
    };
    static const Entry table[] = {
        {"transpose_out", k_transpose_out}, {"task_forward", k_task_forward},
        {"task_backward", k_task_backward}, {"meta_grad_forward", k_meta_grad},
        {"clip_forward", k_clip},           {"adam_forward", k_adam},
    };
    auto fail = [&](const std::string& msg) {
        snprintf(err, err_len, "%s", msg.c_str());
        return 1;
    };
    void (*body)(void**) = nullptr;
    for (const Entry& e : table)
        if (strcmp(e.name, name) == 0) body = e.body;
    if (!body) return fail(std::string("no kernel named ") + name);
    if (block != RM_BLOCK || block == 0 || grid == 0)
        return fail("launch shape " + std::to_string(grid) + " x " + std::to_string(block) +
                    " (compiled for RM_BLOCK " + std::to_string(RM_BLOCK) + ")");
    Block b;
    b.stack_size = 64 * 1024;
    b.body = body;
    b.args = args;
    b.bdim = rm_dim3{block, 1, 1};
    b.gdim = rm_dim3{grid, 1, 1};
    Block* saved = blk;
    blk = &b;
    FaultHandler handler;  // until this function returns
    if (sigsetjmp(fault_jmp, 1) != 0) {
        const unsigned t = b.cur;
        blk = saved;
        return fail(std::string(name) + ": invalid memory access (signal " +
                    std::to_string((int)fault_sig) + ") in block " + std::to_string(b.bidx.x) +
                    ", thread " + std::to_string(t));
    }
    b.smem = std::make_unique<GuardedSmem>(smem_bytes);
    if (!b.smem->data) {
        blk = saved;
        return fail(std::string(name) + ": could not map and guard the emulated shared memory");
    }
    in_launch = 1;
    for (unsigned i = 0; i < grid; ++i) {
        b.bidx = rm_dim3{i, 0, 0};
        b.smem->poison();
        if (!run_block(b)) {
            in_launch = 0;
            blk = saved;
            return fail(std::string(name) + ": " + b.error);
        }
    }
    in_launch = 0;
    blk = saved;
    return 0;
}

// Later launches on this OS thread run each block's threads in reverse index order (1) or in
// order (0).
extern "C" void rm_emu_order(int reverse) { rm_emu::reverse_order = reverse != 0; }

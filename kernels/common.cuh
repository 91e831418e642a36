// Shared definitions of the recmaml kernels: the parameter structs (mirrored by #[repr(C)] structs
// in src/cuda/params.rs; the sizes are checked on both sides), the block size and small helpers.
//
// Conventions: one block per task for the per-task kernels; dimension letters as in the design
// notes (N tasks, K support, Q query, L prefix length, E, H, V, P). Parameter gradients of a
// task are assigned into its workspace; the meta-gradient sums them in task order, so every
// reduction has a fixed order and results are reproducible bit for bit on one device.
// No fast-math: expf/logf/tanhf are the IEEE-accurate library functions.
#ifndef RECMAML_COMMON_CUH
#define RECMAML_COMMON_CUH

typedef unsigned int u32;
typedef unsigned long long u64;

// Threads per block of every kernel (the host launches exactly this many and passes its choice
// as -DRM_BLOCK=...; a multiple of 32 from 64 to 1024).
#ifndef RM_BLOCK
#define RM_BLOCK 256
#endif
#define RM_WARPS (RM_BLOCK / 32)
// "No such row" (a task without the padding item 0).
#define RM_NONE 0xffffffffu

// One split (support or query) of a task. Offsets index the batch's `ints` array, except
// `weights`, which indexes its `floats` array.
struct SplitDesc {
    u32 n_seqs;   // B: sequences (K or Q)
    u32 n_steps;  // T: GRU steps, the sum of the sequence lengths (= records)
    u32 max_len;  // the longest sequence
    u32 seq_off;  // B + 1 record offsets; sequence b is records seq_off[b]..seq_off[b + 1]
    u32 tokens;   // T local embedding rows, one per record
    u32 labels;   // B global label ids
    u32 rows;     // U + 1 CSR starts, then the record indices of each local row, in order
    u32 weights;  // B loss weights (floats)
    u32 mask;     // B * H multipliers of the final hidden states (dropout; floats), or RM_NONE
};

// One task of the meta-batch.
struct TaskDesc {
    SplitDesc support;
    SplitDesc query;
    u32 n_rows;       // U: distinct items in the task's prefixes (its local embedding rows)
    u32 ids;          // U global item ids, sorted
    u32 padding_row;  // local row of item 0, or RM_NONE
    u32 pad_;
};

// Model sizes and the offsets of the PyTorch tensors in the flat parameter buffer.
struct Dims {
    u32 v, e, h, p;
    u32 off_emb, off_wih, off_whh, off_bih, off_bhh, off_wout, off_bout;
    u32 gru_len;  // 3H*E + 3H*H + 6H: the contiguous block w_ih | w_hh | b_ih | b_hh
};

// Per-task workspace: `stride` floats per task, the named buffers at these offsets (floats).
struct WsLayout {
    u64 stride;
    u32 gru, dgru;        // [G] fast GRU block and its gradient
    u32 table, dtable;    // [U_max, E] fast embedding rows and their gradient
    u32 bias, dbias;      // [V] fast output bias and its gradient
    u32 lr_d, lr_g;       // [R_max, V], [R_max, H]: output.weight's SGD updates as rank-1 terms
    u32 hprev, gates;     // [T_max, H], [T_max, 3H] (r, z, n)
    u32 ghn;              // [T_max, H]: W_hn h + b_hn
    u32 dgi, dgh;         // [T_max, 3H]: gradients of the input / hidden pre-activations
    u32 dlt;              // [V, BP]: dlogits transposed, BP = B_max rounded up to 8
    u32 hlast, dhlast;    // [B_max, H]
    u32 logits;           // [B_max, V]: logits, then (in place) dlogits
    u32 lse, loss;        // [B_max]
    u32 coef;             // [B_max, R_max]
    u32 gru_t;            // [E, 3H] then [H, 3H]: w_ih^T and w_hh^T, kept equal to gru's
    u32 rowsum;           // [U_max, 3H]: per local embedding row, the sum of its records' dgi
    u32 red;              // [RM_BLOCK, B_max]: per-slice partial sums of W^T dlogits
    u32 b_max, r_max;
    u32 pad_;
};

// Arguments of task_forward / task_backward.
struct TaskParams {
    Dims d;
    WsLayout ws;
    u32 n_tasks;
    u32 steps;   // S inner SGD steps
    float lr;    // inner learning rate
    u32 q_max;   // row stride of the evaluation logits [N, 2, Q_max, V]
    u32 smem_whh;  // 1: w_hh sits in shared memory (padded rows of H + 1 floats, conflict-free
                   // along rows and columns; see GruSmem in gru.cu); 0: global memory
    u32 pf;        // slices of the columns of W_hh h per gate row in the forward recurrence
    u32 pb;        // slices of the gate rows of W_hh^T dgh per hidden unit in the backward
    u32 pad_;
};

// Arguments of meta_grad_forward.
struct ReduceParams {
    Dims d;
    WsLayout ws;
    u32 n_tasks;
    u32 item_csr;  // V + 1 starts into `ints`, then (task, local row) pairs in task order
    float inv_n;   // 1 / N
    u32 pad_;
};

// Arguments of clip_forward / adam_forward.
struct AdamParams {
    u32 p;
    u32 n_partials;     // blocks of clip_forward (its grid size)
    float clip;         // max total norm; <= 0 or infinite: no clipping
    float step_size;    // lr / (1 - beta1^t)
    float beta2;
    float w1, w2;       // 1 - beta1, 1 - beta2
    float bias_c2_sqrt; // sqrt(1 - beta2^t)
    float eps;
    float anchor_l2;    // weight of the anchor penalty (0: none; clip_forward adds its gradient)
};

static_assert(sizeof(SplitDesc) == 36, "SplitDesc layout");
static_assert(sizeof(TaskDesc) == 88, "TaskDesc layout");
static_assert(sizeof(Dims) == 48, "Dims layout");
static_assert(sizeof(WsLayout) == 112, "WsLayout layout");
static_assert(sizeof(TaskParams) == 192, "TaskParams layout");
static_assert(sizeof(ReduceParams) == 176, "ReduceParams layout");
static_assert(sizeof(AdamParams) == 40, "AdamParams layout");

// Phase profile (compiled in only with -DRM_PROFILE, RECMAML_CUDA_PROFILE=1): thread 0 of each
// of the first RM_PROF_TASKS blocks adds the clock cycles since its previous mark to the phase's
// counter; every mark follows a barrier, so a phase's cycles are the whole block's.
#define RM_PROF_TASKS 1024
#define RM_PROF_CATS 8  // load, GRU input projection, GRU recurrence, output forward,
                        // output backward, GRU backward through time, embedding, GRU gradient + SGD
#ifdef RM_PROFILE
__device__ u64 rm_prof[RM_PROF_TASKS * RM_PROF_CATS];
__device__ u64 rm_prof_last[RM_PROF_TASKS];
#define RM_MARK_START()                                                            \
    do {                                                                           \
        if (threadIdx.x == 0 && blockIdx.x < RM_PROF_TASKS)                        \
            rm_prof_last[blockIdx.x] = clock64();                                  \
    } while (0)
#define RM_MARK(cat)                                                               \
    do {                                                                           \
        if (threadIdx.x == 0 && blockIdx.x < RM_PROF_TASKS) {                      \
            u64 now = clock64();                                                   \
            rm_prof[blockIdx.x * RM_PROF_CATS + (cat)] += now - rm_prof_last[blockIdx.x]; \
            rm_prof_last[blockIdx.x] = now;                                        \
        }                                                                          \
    } while (0)
#else
#define RM_MARK_START() \
    do {                \
    } while (0)
#define RM_MARK(cat) \
    do {             \
    } while (0)
#endif

__device__ __forceinline__ float rm_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// Butterfly sum over a warp: every lane ends with the same value (IEEE addition commutes), so the
// result is deterministic and independent of which lane reads it.
__device__ __forceinline__ float rm_warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

__device__ __forceinline__ float rm_warp_max(float x) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

// Sequence b of a split: its first record and its length.
__device__ __forceinline__ void rm_seq(const u32* ints, const SplitDesc& s, u32 b, u32& start,
                                       u32& len) {
    start = ints[s.seq_off + b];
    len = ints[s.seq_off + b + 1] - start;
}

#endif  // RECMAML_COMMON_CUH

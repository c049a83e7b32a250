// emu_ops.cc — grip::emu: the cuda/*.cuh kernels and host wrappers compiled
// with g++ against the SIMT emulator (GRIP_SIMT_EMU, set by CMake for
// native/simt/*.cc), so the CUDA code runs, and is tested, without a GPU.
#include "../../cuda/adamw.cuh"
#include "../../cuda/gather.cuh"
#include "../../cuda/gumbel.cuh"
#include "../../cuda/score.cuh"
#include "../../cuda/topk.cuh"
#include "../../cuda/matmul.cuh"
#include "../../cuda/attention.cuh"
#include "../../cuda/elementwise.cuh"
#include "../../cuda/norm.cuh"

// gumbel.cu — nvcc translation unit for cuda/gumbel.cuh (grip::cuda).
#include "gumbel.cuh"

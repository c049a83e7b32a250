// gather.cu — nvcc translation unit for cuda/gather.cuh (grip::cuda).
#include "gather.cuh"

// topk.cu — nvcc translation unit for cuda/topk.cuh (grip::cuda).
#include "topk.cuh"

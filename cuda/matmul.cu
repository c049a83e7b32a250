// matmul.cu — nvcc instantiation of cuda/matmul.cuh (grip::cuda::matmul).
#include "matmul.cuh"

/* example.c — a C program using grip's C ABI (native/include/grip/grip.h):
 * top-k of two rows, then a deliberate error to show grip_last_error().
 * Built and run by test/c_abi.test.ts; prints lines the test checks. */
#include <stdio.h>
#include <string.h>

#include "grip/grip.h"

int main(void) {
  float scores[2 * 5] = {0.1f, 0.9f, 0.3f, 0.9f, -1.0f, /* row 0 */
                         5.0f, 4.0f, 3.0f, 2.0f, 1.0f}; /* row 1 */
  int32_t k[2] = {2, 3};
  int32_t indices[2 * 3];
  float values[2 * 3];
  grip_tensor s = {scores, GRIP_F32, GRIP_DEVICE_CPU, 2, {2, 5}};
  grip_tensor idx = {indices, GRIP_I32, GRIP_DEVICE_CPU, 2, {2, 3}};
  grip_tensor val = {values, GRIP_F32, GRIP_DEVICE_CPU, 2, {2, 3}};

  printf("version %s simd %s\n", grip_version(), grip_simd());
  grip_status st = grip_topk(&s, k, &idx, &val);
  if (st != GRIP_OK) {
    printf("topk failed: %s\n", grip_last_error());
    return 1;
  }
  for (int b = 0; b < 2; ++b) {
    printf("row %d:", b);
    for (int j = 0; j < 3; ++j) printf(" %d", indices[b * 3 + j]);
    printf("\n");
  }
  k[0] = 6; /* more than N = 5 */
  st = grip_topk(&s, k, &idx, &val);
  printf("error %d: %s\n", (int)st, grip_last_error());
  return st == GRIP_ERR_RANGE ? 0 : 1;
}

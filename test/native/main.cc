// main.cc — runs every GRIP_CHECK registered by test/native/*.cc.
// Usage: grip_native_checks [substring]  (runs only checks whose name contains it)
#include <cstdio>
#include <cstring>
#include <exception>

#include "check.h"

int main(int argc, char** argv) {
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int passed = 0, failed = 0;
  for (const grip_check::Entry& e : grip_check::registry()) {
    if (filter && !std::strstr(e.name, filter)) continue;
    grip_check::Context ctx;
    try {
      e.fn(ctx);
    } catch (const std::exception& ex) {
      ctx.fail(std::string("uncaught exception: ") + ex.what());
    } catch (...) {
      ctx.fail("uncaught exception");
    }
    if (ctx.failures == 0) {
      std::printf("ok %s\n", e.name);
      ++passed;
    } else {
      std::printf("FAIL %s: %s%s\n", e.name, ctx.messages.c_str(),
                  ctx.failures > 5 ? " (and more)" : "");
      ++failed;
    }
    std::fflush(stdout);
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

// status.h — grip's internal error value. Every op returns a Status; the C ABI
// turns it into a grip_status code plus grip_last_error() text.
#pragma once
#include <string>
#include <utility>

#include "grip/grip.h"

namespace grip {

struct Status {
  grip_status code = GRIP_OK;
  std::string message;

  static Status Ok() { return {}; }
  bool ok() const { return code == GRIP_OK; }
};

// The one message shape: "expected X for Y but received Z".
inline Status Error(grip_status code, const std::string& expected, const std::string& what,
                    const std::string& received) {
  return Status{code, "expected " + expected + " for " + what + " but received " + received};
}

// Sets grip_last_error() to the status' message and returns its code (capi.cc).
grip_status ReportStatus(const Status& status);

}  // namespace grip

#define GRIP_RETURN_IF_ERROR(expr)          \
  do {                                      \
    ::grip::Status grip_status_ = (expr);   \
    if (!grip_status_.ok()) return grip_status_; \
  } while (0)

// capi_export.cc — libgrip.so is grip_ops linked whole; this file only gives
// the shared-library target a source of its own.

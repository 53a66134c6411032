#pragma once
// TRTPACK_VERSION is defined by Bazel from //:version.bzl.
#ifndef TRTPACK_VERSION
#error "TRTPACK_VERSION must be defined by the build (see //:version.bzl)"
#endif

namespace trtpack {
inline constexpr const char* kVersion = TRTPACK_VERSION;
}

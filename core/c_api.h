#pragma once
// trtpack's core behind a C ABI: one shared library (libtrtpack_core.so) that any CPython loads with ctypes, so the
// wheel does not depend on the Python version (docs/PACKAGING.md says why). py/trtpack/core_binding.py is its only
// caller.
//
// Conventions: text and byte buffers are (pointer, length) and need not be NUL-terminated. A function that can fail
// returns 0 on success, or 1 after setting *error_field and *error_message (the core's RecordError: the field that
// failed, and what to do). Every string handed out is malloc'ed, NUL-terminated UTF-8 (messages may quote
// damaged input: decode them leniently) and freed with trtpack_free.
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TRTPACK_C_API_VERSION 1

int trtpack_c_api_version(void);

// Constants and field tables as JSON: {"version", "format_id", "format_version", "max_plan_size", "dtypes",
// "fields", "tensor_fields", "symbol_range_fields" ([key, kind, required, since, doc] each), "target_bits"}.
char* trtpack_info_json(void);

void trtpack_free(void* p);

// Meta text -> parsed, upgraded, validated, canonical meta text (*out).
int trtpack_canonical_meta(const char* meta, size_t meta_len, char** out, char** error_field, char** error_message);

// Plan bytes vs record (size, TensorRT-RTX header, and the digest when verify_digest).
int trtpack_check_plan(const char* meta, size_t meta_len, const uint8_t* plan, size_t plan_len, int verify_digest,
                       char** error_field, char** error_message);

// The record's digest rule (plan_xxh3 where the record has it, else plan_sha256) over plan_size bytes read from a
// file descriptor at `offset`, streamed in pieces: the .engine loader's check without mapping the plan.
int trtpack_check_plan_digest_fd(const char* meta, size_t meta_len, int fd, uint64_t offset, char** error_field,
                                 char** error_message);

// XXH3-128, 32 lowercase hex digits + NUL into out[33].
void trtpack_xxh3(const uint8_t* data, size_t len, char* out);
void* trtpack_xxh3_stream_new(void);  // NULL when out of memory
void trtpack_xxh3_stream_update(void* stream, const uint8_t* data, size_t len);
void trtpack_xxh3_stream_hex(const void* stream, char* out);
void trtpack_xxh3_stream_free(void* stream);

// The 64-byte TensorRT-RTX plan header as JSON {"magic", "version", "size", "target_mask", "targets",
// "unknown_target_bits"}.
int trtpack_plan_header(const uint8_t* plan, size_t plan_len, char** out, char** error_field, char** error_message);

// A dim expression as a JSON tree: int | ["sym", name] | [op, a, b].
int trtpack_parse_dim(const char* expr, size_t expr_len, char** out, char** error_field, char** error_message);

// A dim expression's value given symbols as a JSON object {name: int}.
int trtpack_eval_dim(const char* expr, size_t expr_len, const char* symbols_json, size_t symbols_len, int64_t* out,
                     char** error_field, char** error_message);

// Can a machine ({"cuda": bool, "sm": str|null, "backends": {name: version}}) run this engine? JSON
// {"usable": bool, "reason": str}.
int trtpack_compatibility(const char* meta, size_t meta_len, const char* machine_json, size_t machine_len, char** out,
                          char** error_field, char** error_message);

#ifdef __cplusplus
}
#endif

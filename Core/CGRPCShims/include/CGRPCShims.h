#pragma once
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <grpc/grpc.h>
#include <grpc/byte_buffer.h>
#include <grpc/slice.h>

// GRPC_SLICE_START_PTR / GRPC_SLICE_LENGTH are macros over a union: not importable.
const uint8_t *nebula_grpc_slice_start(const grpc_slice *slice);
size_t nebula_grpc_slice_length(const grpc_slice *slice);
// GRPC_PROPAGATE_DEFAULTS is a macro expression.
uint32_t nebula_grpc_propagate_defaults(void);
// A byte buffer's total length, and a copy of its bytes into dst (which holds at least that many).
size_t nebula_grpc_byte_buffer_length(grpc_byte_buffer *buffer);
int nebula_grpc_byte_buffer_copy(grpc_byte_buffer *buffer, uint8_t *dst, size_t capacity);
// A byte buffer holding a copy of len bytes.
grpc_byte_buffer *nebula_grpc_byte_buffer_from_bytes(const uint8_t *bytes, size_t len);
// Looks up a metadata key (case-sensitive, keys are lower-case on the wire) and copies the value
// into a malloc'd NUL-terminated string; NULL when absent. Free with free().
char *nebula_grpc_metadata_lookup(const grpc_metadata_array *array, const char *key);

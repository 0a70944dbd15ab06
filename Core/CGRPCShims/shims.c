#include "CGRPCShims.h"
#include <grpc/byte_buffer_reader.h>

const uint8_t *nebula_grpc_slice_start(const grpc_slice *slice) { return GRPC_SLICE_START_PTR(*slice); }
size_t nebula_grpc_slice_length(const grpc_slice *slice) { return GRPC_SLICE_LENGTH(*slice); }
uint32_t nebula_grpc_propagate_defaults(void) { return GRPC_PROPAGATE_DEFAULTS; }

size_t nebula_grpc_byte_buffer_length(grpc_byte_buffer *buffer) {
  return buffer ? grpc_byte_buffer_length(buffer) : 0;
}

int nebula_grpc_byte_buffer_copy(grpc_byte_buffer *buffer, uint8_t *dst, size_t capacity) {
  grpc_byte_buffer_reader reader;
  if (!grpc_byte_buffer_reader_init(&reader, buffer)) return 0;
  grpc_slice slice;
  size_t offset = 0;
  int ok = 1;
  while (grpc_byte_buffer_reader_next(&reader, &slice)) {
    size_t n = GRPC_SLICE_LENGTH(slice);
    if (offset + n > capacity) { ok = 0; grpc_slice_unref(slice); break; }
    memcpy(dst + offset, GRPC_SLICE_START_PTR(slice), n);
    offset += n;
    grpc_slice_unref(slice);
  }
  grpc_byte_buffer_reader_destroy(&reader);
  return ok;
}

grpc_byte_buffer *nebula_grpc_byte_buffer_from_bytes(const uint8_t *bytes, size_t len) {
  grpc_slice slice = grpc_slice_from_copied_buffer((const char *)bytes, len);
  grpc_byte_buffer *buffer = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  return buffer;
}

char *nebula_grpc_metadata_lookup(const grpc_metadata_array *array, const char *key) {
  size_t keylen = strlen(key);
  for (size_t i = 0; i < array->count; i++) {
    const grpc_metadata *md = &array->metadata[i];
    if (GRPC_SLICE_LENGTH(md->key) == keylen && memcmp(GRPC_SLICE_START_PTR(md->key), key, keylen) == 0) {
      size_t n = GRPC_SLICE_LENGTH(md->value);
      char *out = malloc(n + 1);
      if (!out) return NULL;
      memcpy(out, GRPC_SLICE_START_PTR(md->value), n);
      out[n] = 0;
      return out;
    }
  }
  return NULL;
}

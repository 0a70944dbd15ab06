#pragma once
// grpc's port_platform.h defines _GNU_SOURCE before the libc headers; pull those in first so
// fd_set has the same shape here as in Foundation/Dispatch.
#include <stdlib.h>
#include <string.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <grpc/support/alloc.h>

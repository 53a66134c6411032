/* The per-call work of a whole-program CUDA graph with one input and one output (py/trtpack/runtime/
   graph_launch.py): point its input copy at the caller's tensor and its output copy at the call's fresh tensor,
   each only where the address changed, then launch it, in one call from Python instead of one per step.

   No CUDA headers and no libcuda link: the driver's entry points come in as function pointers (Python takes them
   from libcuda.so.1 with ctypes), and each CUDA_MEMCPY3D is the caller's own 200-byte struct, of which only the
   srcDevice / dstDevice fields are read and written here. */
#include <stdint.h>
#include <string.h>

typedef int (*set_memcpy_params_fn)(void* graph_exec, void* node, const void* params, void* context);
typedef int (*launch_fn)(void* graph_exec, void* stream);
typedef int (*current_context_fn)(void** context);

enum { SRC_DEVICE = 48, DST_DEVICE = 136 }; /* offsetof(CUDA_MEMCPY3D, srcDevice / dstDevice) on 64-bit Linux */

typedef struct {
  set_memcpy_params_fn set_memcpy_params; /* cuGraphExecMemcpyNodeSetParams */
  launch_fn launch;                       /* cuGraphLaunch */
  current_context_fn current_context;     /* cuCtxGetCurrent */
  void* graph_exec;
  void* context;                          /* the graph's: a call made with another one current changes nothing */
  void* in_node;
  unsigned char* in_params;
  void* out_node;
  unsigned char* out_params;
} trtpack_graph_call;

enum {
  TRTPACK_LAUNCHED = 0,
  TRTPACK_OTHER_CONTEXT = 1,     /* nothing done */
  TRTPACK_SOURCE_REFUSED = 2,    /* nothing launched; the input node keeps its address */
  TRTPACK_DESTINATION_REFUSED = 3, /* nothing launched; the output node keeps its address */
  TRTPACK_LAUNCH_FAILED = 16     /* + the CUresult of cuGraphLaunch */
};

static int point(const trtpack_graph_call* call, void* node, unsigned char* params, int field, uint64_t address) {
  uint64_t previous;
  memcpy(&previous, params + field, sizeof previous);
  if (previous == address) return 0;
  memcpy(params + field, &address, sizeof address);
  if (call->set_memcpy_params(call->graph_exec, node, params, call->context) == 0) return 0;
  memcpy(params + field, &previous, sizeof previous);
  return 1;
}

int trtpack_graph_launch(const trtpack_graph_call* call, uint64_t source, uint64_t destination, void* stream) {
  void* context = 0;
  if (call->current_context(&context) != 0 || context != call->context) return TRTPACK_OTHER_CONTEXT;
  if (point(call, call->in_node, call->in_params, SRC_DEVICE, source)) return TRTPACK_SOURCE_REFUSED;
  if (point(call, call->out_node, call->out_params, DST_DEVICE, destination)) return TRTPACK_DESTINATION_REFUSED;
  int result = call->launch(call->graph_exec, stream);
  return result == 0 ? TRTPACK_LAUNCHED : TRTPACK_LAUNCH_FAILED + result;
}

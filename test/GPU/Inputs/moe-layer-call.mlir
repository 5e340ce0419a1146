// A module that declares @moe_layer of the kernel library, for
// moe-link-gpu-kernels to define (host-calls.test).
func.func private @moe_layer(memref<?x?xbf16>, memref<?x?xbf16>,
                             memref<?x?x?xbf16>, memref<?x?x?xbf16>,
                             memref<?x?x?xbf16>, index, memref<?xi32>,
                             memref<?x?xf32>)

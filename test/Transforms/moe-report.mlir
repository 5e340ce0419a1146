// RUN: moe-opt %s --moe-report="tokens=0,1,1000" -o /dev/null 2>&1 | FileCheck %s
// RUN: moe-opt %s --moe-report="file=-" | FileCheck %s --check-prefix=STDOUT
// RUN: not moe-opt %s --moe-report="tokens=-1" -o /dev/null 2>&1 | FileCheck %s --check-prefix=BAD

// Gated experts d 64, f 96, E 8, k 2 with a gated shared expert (fs 32):
//   router 8*64 = 512; expert 3*64*96 = 18432; shared 3*64*32 + 64 = 6208
//   held 512 + 8*18432 + 6208 = 154176; per token 512 + 2*18432 + 6208 = 43584
//   1000 tokens: sparse 2e3*43584 = 0.087 GFLOP, dense 2e3*154176 = 0.308
//   bytes: every expert touched (1 - 0.75^1000 ~ 1): 154176 * 4 = 0.6 MB
// CHECK-LABEL: moe-report: @gated_shared: gated experts, E = 8, k = 2, f32 weights
// CHECK-NEXT: parameters: 154176 held, 43584 per token (28.3%)
// CHECK-NEXT: tokens  sparse GFLOP  dense GFLOP  FLOPs saved  weight MB sparse  dense
// CHECK-NEXT:      0         0.000        0.000         0.0%               0.0    0.6
// CHECK-NEXT:      1         0.000        0.000        71.7%               0.2    0.6
// CHECK-NEXT:   1000         0.087        0.308        71.7%               0.6    0.6
// STDOUT: moe-report: @gated_shared
func.func @gated_shared(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>,
                        %w1: tensor<8x96x64xf32>, %w3: tensor<8x96x64xf32>,
                        %w2: tensor<8x64x96xf32>, %sg: tensor<32x64xf32>,
                        %sd: tensor<64x32xf32>, %ws: tensor<1x64xf32>)
    -> tensor<?x64xf32> {
  %y, %l, %d = moe.layer %x router(%wg : tensor<8x64xf32>)
      experts(%w1, %w3, %w2 : tensor<8x96x64xf32>, tensor<8x96x64xf32>,
                              tensor<8x64x96xf32>)
      shared(%sg, %sg, %sd, %ws : tensor<32x64xf32>, tensor<32x64xf32>,
                                  tensor<64x32xf32>, tensor<1x64xf32>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// LoRA experts on a frozen base (d 64, d_out 64, r 4, E 16, k 4, bf16):
//   router 16*64 = 1024; base 64*64 = 4096 (every token); adapters 4*64*2 = 512
//   held 1024 + 4096 + 16*512 = 13312; per token 1024 + 4096 + 4*512 = 7168
//   dense: 1024 + 4096 + 16*512 = 13312 per token
// CHECK-LABEL: moe-report: @lora: lora experts, E = 16, k = 4, bf16 weights
// CHECK-NEXT: parameters: 13312 held, 7168 per token (53.8%)
// CHECK: 1000         0.014        0.027        46.2%               0.0    0.0
func.func @lora(%x: tensor<?x64xbf16>, %wg: tensor<16x64xbf16>,
                %base: tensor<64x64xbf16>, %a: tensor<16x4x64xbf16>,
                %b: tensor<16x64x4xbf16>) -> tensor<?x64xbf16> {
  %y, %l, %d = moe.layer %x router(%wg : tensor<16x64xbf16>)
      experts(%base, %a, %b : tensor<64x64xbf16>, tensor<16x4x64xbf16>,
                              tensor<16x64x4xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 4>,
       experts = #moe.experts<kind = lora, alpha = 8.0>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// MixLoRA: the base gated FFN (3*64*96 = 18432) runs once per slot with
// its expert's adapters (A, B for gate, up, down: 4*(64+96)*2 + 4*(96+64)
// = 1920 per expert); E 4, k 2, router 256.
//   held 256 + 18432 + 4*1920 = 26368; per token 256 + 18432 + 2*1920 = 22528
//   FLOPs per token: 2*(256 + 2*(1920 + 18432)) = 81920; dense:
//   2*(256 + 4*(1920 + 18432)) = 163328: 49.8% saved
// CHECK-LABEL: moe-report: @lora_gated: lora_gated experts, E = 4, k = 2, f32 weights
// CHECK-NEXT: parameters: 26368 held, 22528 per token (85.4%)
// CHECK: 1000         0.082        0.163        49.8%
func.func @lora_gated(%x: tensor<?x64xf32>, %wg: tensor<4x64xf32>,
                      %g: tensor<96x64xf32>, %u: tensor<96x64xf32>,
                      %dn: tensor<64x96xf32>,
                      %ga: tensor<4x4x64xf32>, %gb: tensor<4x96x4xf32>,
                      %ua: tensor<4x4x64xf32>, %ub: tensor<4x96x4xf32>,
                      %da: tensor<4x4x96xf32>, %db: tensor<4x64x4xf32>)
    -> tensor<?x64xf32> {
  %y, %l, %d = moe.layer %x router(%wg : tensor<4x64xf32>)
      experts(%g, %u, %dn, %ga, %gb, %ua, %ub, %da, %db
          : tensor<96x64xf32>, tensor<96x64xf32>, tensor<64x96xf32>,
            tensor<4x4x64xf32>, tensor<4x96x4xf32>, tensor<4x4x64xf32>,
            tensor<4x96x4xf32>, tensor<4x4x96xf32>, tensor<4x64x4xf32>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = lora_gated, alpha = 8.0>}
      : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// BAD: moe-report expects token counts >= 0

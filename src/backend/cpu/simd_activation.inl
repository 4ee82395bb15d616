// exp-based kernels: softmax numerators and the gated SiLU. See simd_common.inl.

float exp_sum(float* s, int64_t n, float max) {
  const Reg m = V::set1(max);
  Reg acc = V::zero();
  int64_t i = 0;
  for (; i + kW <= n; i += kW) {
    const Reg e = V::exp(V::sub(V::load(s + i), m));
    V::store(s + i, e);
    acc = V::add(acc, e);
  }
  float sum = V::hsum(acc);
  alignas(64) float tmp[kW];
  for (; i < n; ++i) {
    V::store(tmp, V::exp(V::set1(s[i] - max)));
    s[i] = tmp[0];
    sum += tmp[0];
  }
  return sum;
}

float silu_scalar(float g) {
  alignas(64) float tmp[kW];
  V::store(tmp, V::exp(V::set1(-g)));
  return g / (1.0f + tmp[0]);
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  const Reg one = V::set1(1.0f);
  int64_t i = 0;
  for (; i + kW <= n; i += kW) {
    const Reg g = V::load(gate + i);
    const Reg e = V::exp(V::sub(V::zero(), g));
    V::store(out + i, V::mul(V::div(g, V::add(one, e)), V::load(up + i)));
  }
  for (; i < n; ++i) out[i] = silu_scalar(gate[i]) * up[i];
}

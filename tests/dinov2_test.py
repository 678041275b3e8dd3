"""Tests of asic_jax.models.dinov2 against transformers' PyTorch DINOv2, and its Flax DINOv2.

`fixtures/dinov2_reference.npz` (scripts/make_dinov2_fixture.py) holds two tiny random DINOv2s
(the ViT MLP and SwiGLU), saved by PyTorch's `save_pretrained`, and their float64 outputs at
the native stride (the model's own forward) and at strides 7 and 2.
"""

import os

os.environ['HF_HUB_OFFLINE'] = '1'  # before transformers reads it: nothing may go online

import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy
import transformers
from conftest import FIXTURES

from asic_jax.models import dino, dinov2

CASES = ('native', 's7', 's2', 'swiglu')


@pytest.fixture(scope='module')
def ref() -> dict[str, np.ndarray]:
  with np.load(FIXTURES / 'dinov2_reference.npz', allow_pickle=False) as data:
    return {key: data[key] for key in data.files}


@pytest.fixture(scope='module')
def models(ref, tmp_path_factory) -> dict[str, tuple[dino.ViTArch, dict]]:
  """The fixture's two models, loaded from folders as PyTorch's `save_pretrained` wrote them."""
  loaded = {}
  for kind in ('mlp', 'swiglu'):
    folder = tmp_path_factory.mktemp(f'pt_dinov2_{kind}')
    (folder / 'config.json').write_text(str(ref[f'config_json_{kind}']))
    (folder / 'model.safetensors').write_bytes(ref[f'safetensors_{kind}'].tobytes())
    loaded[kind] = dinov2.load_dinov2(str(folder))
  return loaded


def _tokens(out: dino.DinoFeatures) -> np.ndarray:
  """`[B, 1 + h w, C]`: the CLS facet, then the patches in row-major order."""
  batch = out.descriptors.shape[0]
  return np.concatenate(
      [out.cls[:, None],
       np.reshape(out.descriptors, (batch, -1, out.cls.shape[-1]))], axis=1)


def test_loads_pytorch_safetensors_into_the_vit_layout(models, ref):
  arch, params = models['mlp']
  assert arch == dino.ViTArch(patch_size=14,
                              hidden_size=24,
                              num_heads=6,
                              num_layers=3,
                              position_grid=16,
                              layer_norm_eps=1e-6,
                              hidden_act='gelu',
                              position_offset=0.0)
  torch_state = safetensors.numpy.load(ref['safetensors_mlp'].tobytes())
  block, prefix = params['encoder']['layer']['1'], 'encoder.layer.1.'
  pairs = [(block['layernorm_before']['scale'], torch_state[prefix + 'norm1.weight']),
           (block['layernorm_after']['bias'], torch_state[prefix + 'norm2.bias']),
           (block['layer_scale1']['lambda1'], torch_state[prefix + 'layer_scale1.lambda1']),
           (block['layer_scale2']['lambda1'], torch_state[prefix + 'layer_scale2.lambda1']),
           (block['intermediate']['dense']['kernel'], torch_state[prefix + 'mlp.fc1.weight'].T),
           (block['output']['dense']['kernel'], torch_state[prefix + 'mlp.fc2.weight'].T),
           (block['attention']['attention']['key']['kernel'],
            torch_state[prefix + 'attention.attention.key.weight'].T),
           (params['embeddings']['position_embeddings'],
            torch_state['embeddings.position_embeddings'])]
  for got, want in pairs:
    np.testing.assert_array_equal(got, want)
  swiglu = models['swiglu'][1]['encoder']['layer']['0']
  assert 'intermediate' not in swiglu
  np.testing.assert_array_equal(
      swiglu['swiglu']['weights_in']['kernel'],
      safetensors.numpy.load(
          ref['safetensors_swiglu'].tobytes())['encoder.layer.0.mlp.weights_in.weight'].T)


@pytest.mark.parametrize('case', CASES)
def test_every_block_matches_pytorch(models, ref, case):
  """Every block's output (the token facet, CLS included) to 1e-5, at the native stride through
  transformers' own forward and at strides 7 and 2 (values up to about 8)."""
  arch, params = models[str(ref[f'model_{case}'])]
  want = ref[f'tokens_{case}']
  facets, _, _, cls = dino.extract_layers(params,
                                          jnp.asarray(ref[f'images_{case}']),
                                          arch,
                                          layers=tuple(range(len(want))),
                                          facet='token',
                                          stride=int(ref[f'stride_{case}']))
  for layer in range(len(want)):
    got = _tokens(dino.DinoFeatures(facets[layer], None, cls[layer], None))
    np.testing.assert_allclose(got, want[layer], atol=1e-5, rtol=0)


@pytest.mark.parametrize('case', ['native', 's2'])  # s7: every block, and the positions
def test_facets_and_saliency_match_pytorch(models, ref, case):
  arch, params = models['mlp']
  images = jnp.asarray(ref[f'images_{case}'])
  for facet in ('key', 'query', 'value'):
    out = dino.extract(params,
                       images,
                       arch,
                       layer=int(ref['facet_layer']),
                       facet=facet,
                       stride=int(ref[f'stride_{case}']),
                       include_cls=True,
                       saliency=True,
                       saliency_heads=dinov2.saliency_heads(arch))
    np.testing.assert_allclose(_tokens(out), ref[f'{facet}_{case}'], atol=1e-5, rtol=0)
  attention = ref[f'cls_attention_{case}'].mean(axis=1)  # every head
  low, high = attention.min(1, keepdims=True), attention.max(1, keepdims=True)
  np.testing.assert_allclose(np.reshape(out.saliency, attention.shape),
                             (attention - low) / (high - low),
                             atol=1e-5)


@pytest.mark.parametrize('case', ['native', 's7', 's2'])
def test_positions_are_resized_as_pytorch_resizes_them(models, ref, case):
  arch, params = models['mlp']
  height, width = ref[f'images_{case}'].shape[1:3]
  rows, cols = dino.grid_size(height, width, 14, int(ref[f'stride_{case}']))
  grid = params['embeddings']['position_embeddings'][0, 1:].reshape(16, 16, -1)
  got = dino.interpolate_positions(grid, rows, cols, arch.position_offset)
  np.testing.assert_allclose(np.reshape(got, (rows * cols, -1)), ref[f'pos_{case}'], atol=1e-5)


def test_final_layernorm_gives_the_pytorch_model_output(models, ref):
  arch, params = models['mlp']
  out = dino.extract(params,
                     jnp.asarray(ref['images_native']),
                     arch,
                     layer=arch.num_layers - 1,
                     facet='token',
                     stride=14,
                     include_cls=True)
  tokens = _tokens(out).astype(np.float64)
  norm = params['layernorm']
  normed = (tokens - tokens.mean(
      -1, keepdims=True)) / np.sqrt(tokens.var(-1, keepdims=True) + arch.layer_norm_eps)
  np.testing.assert_allclose(normed * norm['scale'] + norm['bias'],
                             ref['last_hidden_state_native'],
                             atol=1e-5)


@pytest.mark.parametrize('swiglu', [False, True])
def test_equals_flax_dinov2_model_where_it_resizes_nothing(tmp_path, swiglu):
  """At the checkpoint's own image size (no position resize) our forward is
  `FlaxDinov2Model`'s: every block's output and the last block's CLS attention, from a Flax
  `save_pretrained` folder."""
  config = transformers.Dinov2Config(hidden_size=24,
                                     num_hidden_layers=2,
                                     num_attention_heads=6,
                                     mlp_ratio=2,
                                     image_size=56,
                                     patch_size=14,
                                     use_swiglu_ffn=swiglu,
                                     initializer_range=1.0)  # peaked attention
  model = transformers.FlaxDinov2Model(config, seed=4)
  model.save_pretrained(tmp_path)
  arch, params = dinov2.load_dinov2(str(tmp_path))
  images = np.random.default_rng(0).uniform(-1, 1, size=(2, 56, 56, 3)).astype(np.float32)
  pixels = ((images + 1) / 2 - np.array(dino.IMAGENET_MEAN)) / np.array(dino.IMAGENET_STD)
  hf = model(pixels.transpose(0, 3, 1, 2), output_hidden_states=True, output_attentions=True)
  heads = dinov2.saliency_heads(arch)
  for layer in range(2):
    out = dino.extract(params,
                       jnp.asarray(images),
                       arch,
                       layer=layer,
                       facet='token',
                       stride=14,
                       include_cls=True,
                       saliency=True,
                       saliency_heads=heads)
    np.testing.assert_allclose(_tokens(out), hf.hidden_states[layer + 1], atol=1e-4, rtol=1e-5)
  attention = np.asarray(hf.attentions[-1])[:, :, 0, 1:].mean(1)
  low, high = attention.min(1, keepdims=True), attention.max(1, keepdims=True)
  np.testing.assert_allclose(np.reshape(out.saliency, (2, 16)), (attention - low) / (high - low),
                             atol=1e-4)


def test_registers_and_other_models_are_refused_with_the_reason(tmp_path):
  transformers.Dinov2WithRegistersConfig(hidden_size=24, num_attention_heads=6).save_pretrained(
      tmp_path / 'registers')
  with pytest.raises(ValueError, match='no Flax DINOv2 with registers'):
    dinov2.load_dinov2(str(tmp_path / 'registers'))
  transformers.ViTConfig(hidden_size=24, num_attention_heads=6).save_pretrained(tmp_path / 'vit')
  with pytest.raises(ValueError,
                     match="a 'vit' model, not a DINOv2 one; use one of "
                     'facebook/dinov2-small'):
    dinov2.load_dinov2(str(tmp_path / 'vit'))

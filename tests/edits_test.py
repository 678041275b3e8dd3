"""Edit propagation: through identity flows an edit lands as painted, on the canonical square
or on one image's foreground; edits given as files or arrays; image names for `edit.on`."""

import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from asic_jax import edits
from asic_jax.errors import UserError
from asic_jax.ops import sampling

SIZE = 16


def _blob_mask(size=SIZE):
  yy, xx = np.mgrid[:size, :size]
  mask = ((xx - 7.0)**2 / 30 + (yy - 8.0)**2 / 20 < 1).astype(np.float32)
  mask[0, 0] = 0.3  # soft: composited in proportion
  return mask


@pytest.mark.parametrize('on', [None, 1])
def test_edit_through_identity_flows_reproduces_the_edit(on):
  rng = np.random.default_rng(3)
  n = 3
  images = rng.uniform(-1, 1, size=(n, SIZE, SIZE, 3)).astype(np.float32)
  edit = rng.uniform(size=(SIZE, SIZE, 4)).astype(np.float32)
  edit[..., 3] = (edit[..., 3] > 0.5) * rng.uniform(0.3, 1, size=(SIZE, SIZE))
  flows = jnp.broadcast_to(sampling.identity_grid(SIZE, SIZE), (n, SIZE, SIZE, 2))
  masks = np.ones((n, SIZE, SIZE), np.float32)
  masks[2] = _blob_mask()  # the edit goes only on this image's foreground
  canvas, edited = edits.propagate(edit, images, flows, masks, on)
  premultiplied = np.concatenate([edit[..., :3] * edit[..., 3:], edit[..., 3:]], -1)
  np.testing.assert_allclose(canvas, premultiplied, atol=1e-5)
  edited = np.asarray(edited)
  alpha = edit[..., 3:] * masks[..., None]
  expected = (images + 1) / 2 * (1 - alpha) + edit[..., :3] * alpha
  np.testing.assert_allclose(edited, expected, atol=1e-5)


def test_an_edit_is_a_file_or_an_array_in_the_unit_range(tmp_path):
  sticker = np.zeros((3, 5, 4), np.uint8)
  sticker[1, 2] = [255, 0, 51, 255]
  Image.fromarray(sticker).save(tmp_path / 'sticker.png')
  Image.fromarray(sticker[..., :3]).save(tmp_path / 'opaque.png')
  from_file = edits.as_rgba(tmp_path / 'sticker.png')
  assert from_file.dtype == np.float32 and from_file.shape == (3, 5, 4)
  np.testing.assert_allclose(from_file, sticker / 255.0)
  np.testing.assert_allclose(edits.as_rgba(sticker), from_file)
  np.testing.assert_allclose(edits.as_rgba(sticker / 255.0), from_file)
  assert np.all(edits.load_edit(tmp_path / 'opaque.png')[..., 3] == 1.0)  # no alpha: opaque
  with pytest.raises(UserError, match=r'must be \[h, w, 4\] RGBA, got shape \(3, 5, 3\)'):
    edits.as_rgba(sticker[..., :3])
  with pytest.raises(UserError, match='edit.image: no file'):
    edits.as_rgba(tmp_path / 'missing.png')


def test_edit_targets_by_name_or_index():
  names = ('cat-01', 'cat-02', 'dog')
  assert edits.edit_index('canonical', names) is None
  assert edits.edit_index('dog', names) == 2 == edits.edit_index('-1', names)
  with pytest.raises(UserError, match='edit.on'):
    edits.edit_index('3', names)

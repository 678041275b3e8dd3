"""The benchmark scripts stay runnable: each benchmark at a tiny shape, its records checked."""

from asic_jax.models import dino
from benchmarks import common, evaluation, extraction, train_step


def test_train_step_benchmark_at_the_tiny_shape():
  record = train_step.bench('tiny', dtype='float32', steps=1)
  assert (record['batch'], record['img'], record['images'], record['pairs']) == (4, 32, 6, 15)
  assert record['ms_per_step'] > 0 and record['compile_s'] > 0
  assert record['xla_memory_gb'] > 0


def test_named_shapes_change_one_thing():
  released = train_step.shape_config('released', 'float32')
  assert train_step.shape_config('batch=8', 'float32').train.batch_size == 8
  img = train_step.shape_config('img=256', 'float32')
  assert (img.data.img_size, img.loss.recon_size, img.model.grid_size) == (256, 128, 256)
  many = train_step.shape_config('images=300', 'float32')
  assert many.data.synthetic.num_images == 300 and many.pairs.max_per_image == 10
  assert released.pairs.max_per_image == 0


def test_extraction_benchmark_pads_the_last_batch(tiny_vit):
  arch, params = dino.load_vit(str(tiny_vit))
  record = extraction.bench(arch, params, size=32, stride=8, images=3, batch=2)
  assert record['grid'] == '4x4' and record['pairs'] == 3  # 1 + (32 - 8) / 8 patches a side
  assert record['s_per_image'] > 0 and record['total_s'] >= record['mutual_nn_s']


def test_evaluation_benchmark_counts_every_transfer():
  record = evaluation.bench(4, 32)
  assert record['pairs'] == 12 and record['score_s'] > 0


def test_markdown_table():
  table = common.markdown_table([{'a': 1.23456, 'b': None}], [('a', 'A'), ('b', 'B')])
  assert table.splitlines() == ['| A | B |', '|---|---|', '| 1.23 | – |']

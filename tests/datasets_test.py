"""Tests of asic_jax.data.datasets: the missing-dataset message, `require`, categories."""

import pytest

from asic_jax.data import datasets
from asic_jax.errors import UserError


def test_missing_dataset_message(tmp_path):
  error = datasets.missing_dataset('PF-WILLOW', tmp_path / 'PF-dataset-WILLOW', 'car(G)/*.png')
  message = str(error)
  assert '\n' not in message
  assert str(tmp_path / 'PF-dataset-WILLOW') in message
  assert 'car(G)/*.png' in message
  assert 'https://www.di.ens.fr/willow/research/proposalflow/' in message


def test_require_returns_what_exists_and_names_what_does_not(tmp_path):
  assert datasets.require(tmp_path, 'SAMURAI', 'x') == tmp_path
  with pytest.raises(UserError, match='SAMURAI not found.*markboss.me') as error:
    datasets.require(tmp_path / 'gone', 'SAMURAI', '<object>/images/*')
  assert str(tmp_path / 'gone') in str(error.value)


def test_every_dataset_has_a_published_address():
  assert set(datasets.PUBLISHED_AT) == {'SPair-71k', 'CUB-200-2011', 'PF-WILLOW', 'SAMURAI'}
  assert all(url.startswith('https://') for url in datasets.PUBLISHED_AT.values())


def test_unknown_category_lists_the_valid_ones():
  datasets.check_category('SPair-71k', 'cat', ('cat', 'dog'))
  with pytest.raises(UserError, match="no category 'cow'; valid: cat, dog"):
    datasets.check_category('SPair-71k', 'cow', ('cat', 'dog'))

"""SAMURAI-style object folders: images, optional foreground masks, no keypoints.

Layout under `root`:

  SAMURAI/<object>/images/<stem>.<any image format>
  SAMURAI/<object>/masks/<stem>.<any image format>    (optional; one per image)

Any folder of that shape is an object: there is no fixed category list
(`objects(root)` lists those present). Masks become soft foreground in [0, 1]:
the alpha channel where a mask has a non-opaque one (a cut-out), else its gray
level over the full range of its type (8- or 16-bit, binary, palette, RGB).
A mask goes through the same frame as its image: the same centred edge-padding
(as the released SquarePad does for the image; where the object touches the
border the replicated image pixels show object colour, so the replicated mask
keeps mask and image consistent pixel for pixel) and the same resize.
Without keypoints there are no evaluation pairs; the PCK length is S (`img`),
for the cycle self-consistency score.
"""

import pathlib

from asic_jax.data import datasets
from asic_jax.data import collection as collection_lib
from asic_jax.data import folder
from asic_jax.data import thresholds as thresholds_lib

_DATASET = 'SAMURAI'
_LAYOUT = '<object>/images/* (and optionally <object>/masks/* of the same stems)'


def objects(root: str | pathlib.Path) -> tuple[str, ...]:
  """The object folders under `<root>/SAMURAI` (those with an `images/` folder), sorted."""
  base = datasets.require(pathlib.Path(root) / _DATASET, _DATASET, _LAYOUT)
  return tuple(sorted(p.name for p in base.iterdir() if (p / 'images').is_dir()))


def load_samurai(root: str | pathlib.Path, category: str, size: int) -> collection_lib.Collection:
  """One SAMURAI-style object as a collection (pairs and matches are added later).

  Args:
    root: the folder holding `SAMURAI/`.
    category: the object's folder name, one of `objects(root)`.
    size: S, the side of the square images.

  Returns:
    A `Collection`: images `[N, S, S, 3]`, masks `[N, S, S]` in [0, 1] or None,
    thresholds `[N]` (= S); no keypoints, no eval_pairs.
  """
  datasets.check_category(_DATASET, category, objects(root))
  base = pathlib.Path(root) / _DATASET / category
  masks = base / 'masks'
  collection = folder.load_folder(base / 'images',
                                  size,
                                  mask_dir=masks if masks.is_dir() else None,
                                  name=f'samurai_{category}')
  return collection.replace(thresholds=thresholds_lib.thresholds('img', size, len(collection)),
                            threshold_kind='img')

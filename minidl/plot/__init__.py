"""Pictures of training and of a trained CNN, with matplotlib (the optional ``plot`` extra).

``import minidl.plot`` works without matplotlib; each function imports it when
called (ImportError naming ``pip install 'minidl[plot]'`` when it is missing).
Every function draws on the given ``ax`` / ``fig`` or on a new pyplot figure,
returns that :class:`matplotlib.figure.Figure` and never calls ``plt.show()``.

- :func:`learning_curves`: a History's metrics per epoch, train and validation.
- :func:`filters`: the first Conv2D's kernels.
- :func:`feature_maps`: one layer's output channels for one input.
- :func:`confusion_matrix`: counts (or fractions) of true vs predicted classes.
- :func:`misclassified`: the wrong samples, titled "true→predicted".
- :func:`norms`: per-layer gradient and weight norms recorded by
  :class:`minidl.callbacks.NormHistory`.
- :func:`gradient_errors`: a :func:`minidl.check_model` report, one bar per layer.
- :func:`save_figures`: every open figure as a PNG next to a script (the examples' end).
"""

from .checks import gradient_errors
from .classification import confusion_matrix
from .figures import save_figures
from .images import feature_maps, filters, misclassified
from .training import learning_curves, norms

__all__ = ["learning_curves", "filters", "feature_maps", "confusion_matrix", "misclassified", "norms",
           "gradient_errors", "save_figures"]

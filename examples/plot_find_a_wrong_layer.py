"""Find the wrong layer in a model with check_model
===================================================

``mdl.check_model(model, x)`` runs one real batch through a float64 copy of the model, records
what every layer receives, and checks each layer's hand-written ``backward`` there against finite
differences: element by element for small tensors, along a few random directions for large ones.
ReLU inputs at 0 and max-pool windows with ties are kinks, left out rather than failed.

Here a custom activation, ``x * tanh(x)``, is written with a classic mistake: its backward forgets
the product rule's second term. It sits in the middle of a digits CNN; ``check_model`` names it as
the first failing layer, and ``mdl.plot.gradient_errors`` shows the same at a glance.

Run from any folder:  python examples/plot_find_a_wrong_layer.py  (a few seconds);
it saves its figures as PNG files next to itself and prints their paths.
"""
import matplotlib.pyplot as plt
import numpy as np

import minidl as mdl
from minidl import layers


class XTanh(layers.Layer):
    """``x * tanh(x)``, with a bug: d/dx is taken as ``tanh(x)``, the term ``x (1 - tanh(x)**2)`` is missing."""

    input_spec = layers.InputSpec()

    def forward(self, x):
        self.check_input(x)
        t = np.tanh(x)
        self.save_for_backward(x=x, t=t)
        return x * t

    def backward(self, grad_output, *, input_grad=True):
        t = self.saved_values.t
        return grad_output * t  # BUG: should be grad_output * (t + x * (1 - t**2))


(X, y), _ = mdl.data.load_digits(test_size=0.2, seed=0)
rng = np.random.default_rng(0)
model = mdl.Sequential(
    layers.Conv2D(1, 8, 3, padding=1, rng=rng), layers.ReLU(), layers.MaxPool2D(2),
    layers.Conv2D(8, 16, 3, padding=1, rng=rng), XTanh(), layers.MaxPool2D(2),
    layers.Flatten(), layers.Dense(64, 10, rng=rng),
)
report = mdl.check_model(model, X[:16], y[:16], mdl.losses.SoftmaxCrossEntropy())
print(report)
print("\nfirst failing layer:", report.first_failure)

fig = mdl.plot.gradient_errors(report)
if "__file__" in globals():  # run as a script: the figures as PNGs next to it (sphinx-gallery shows them itself)
    mdl.plot.save_figures(__file__)
plt.show()

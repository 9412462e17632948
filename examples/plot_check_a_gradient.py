"""Check a gradient numerically
============================

``mdl.gradcheck`` compares a layer's hand-written ``backward`` with central differences,

.. math:: \\frac{\\partial L}{\\partial w} \\approx \\frac{L(w + \\epsilon) - L(w - \\epsilon)}{2\\epsilon},

with :math:`L = \\sum G \\odot \\mathrm{layer}(x)` for a random upstream gradient :math:`G`. Why
in float64, and why :math:`\\epsilon = 10^{-6}`? The error of a central difference has two parts:
the truncation error of the formula, which shrinks like :math:`\\epsilon^2`, and the rounding
error of computing :math:`L` twice and subtracting, which grows like :math:`u/\\epsilon`
(:math:`u` the unit roundoff: :math:`1.1\\times 10^{-16}` in float64, :math:`6\\times 10^{-8}`
in float32). This example measures both for one weight of the first layer of a small network (Conv2D, Tanh,
Dense, cross-entropy: a curved loss, so the truncation error shows), then runs the check.

Run from any folder:  python examples/plot_check_a_gradient.py  (under a second);
it saves its figures as PNG files next to itself and prints their paths.
"""
import matplotlib.pyplot as plt
import numpy as np

import minidl as mdl
from minidl import layers

rng = np.random.default_rng(0)
x = rng.standard_normal((4, 2, 6, 6))
y = np.array([0, 1, 2, 1])
WHERE = (1, 0, 2, 1)  # the weight we perturb: output channel 1, input channel 0, row 2, column 1


def loss_and_grad(dtype):
    """The loss as a function of one weight of the first Conv2D, its value there, and backward's dL/dw."""
    r = np.random.default_rng(1)
    model = mdl.Sequential(layers.Conv2D(2, 3, 3, padding="same", rng=r, dtype=dtype), layers.Tanh(),
                           layers.Flatten(), layers.Dense(3 * 6 * 6, 3, rng=r, dtype=dtype))
    criterion = mdl.losses.SoftmaxCrossEntropy()
    xd, w = x.astype(dtype), model[0].weight.data
    criterion(model(xd), y)
    model.backward(criterion.backward())  # the hand-derived gradients, accumulated into .grad
    analytic = float(model[0].weight.grad[WHERE])

    def loss(value):
        w[WHERE] = value
        return criterion(model(xd), y)

    return loss, float(w[WHERE]), analytic


eps_values = np.logspace(-12, -0.5, 46)
fig, ax = plt.subplots(figsize=(6, 4))
for dtype in (np.float64, np.float32):
    loss, w0, analytic = loss_and_grad(dtype)
    errors = []
    for eps in eps_values:
        numeric = (loss(w0 + eps) - loss(w0 - eps)) / (2 * eps)
        errors.append(abs(numeric - analytic) / abs(analytic))
    ax.loglog(eps_values, np.maximum(errors, 1e-17), "o-", ms=3, label=np.dtype(dtype).name)
    best = eps_values[int(np.argmin(errors))]
    print(f"{np.dtype(dtype).name}: backward gives {analytic:.10f}; smallest relative error "
          f"{min(errors):.1e}, at eps = {best:.0e}")
ax.axvline(1e-6, color="gray", ls=":", label="gradcheck's eps = 1e-6")
ax.set(xlabel="eps", ylabel="relative error of the central difference",
       title="rounding (left) against truncation (right)")
ax.legend()
fig.tight_layout()

# %%
# In float64 the error falls like :math:`\epsilon^2` from the right until rounding takes over
# near :math:`\epsilon = 10^{-6}`, where it is about :math:`10^{-10}`: far below gradcheck's
# ``rtol=1e-5``, so a pass means the derivative is right and a real mistake (a missing term, a
# wrong factor) stands out by orders of magnitude. In float32 the best is about :math:`10^{-4}`,
# and below :math:`\epsilon \approx 10^{-6}` both evaluations round to the same number (error 1):
# that is why gradcheck works on a float64 copy of the layer.
#
# The whole check of one layer: every input and every parameter, element by element, in float64.
# The report gives, per tensor, the largest absolute and relative error and where it is.
report = mdl.gradcheck(layers.Conv2D(2, 3, 3, stride=2, padding="same", rng=np.random.default_rng(1)), x)
print(report)
assert report.passed

if "__file__" in globals():  # run as a script: the figures as PNGs next to it (sphinx-gallery shows them itself)
    mdl.plot.save_figures(__file__)

"""Tutorial: train the digits CNN and look inside it
==================================================

We train minidl's reference CNN on scikit-learn's 8x8 digits, then look at what it learned:
the learning curves, the gradient and weight norms of every layer during training, the first
layer's filters, the feature maps one digit produces on its way through the network, the
confusion matrix and the digits it gets wrong. Every picture is drawn by one :mod:`minidl.plot`
function (matplotlib, the ``plot`` extra); ``minidl train`` writes the same pictures as PNG files
next to the model.

Run from any folder:  python examples/plot_digits_tutorial.py  (about 2 s of training on one core);
it saves its figures as PNG files next to itself and prints their paths.
"""

# %%
# The data
# --------
# ``load_digits`` gives float32 images of shape (N, 1, 8, 8) in [0, 1] (NCHW, as PyTorch) and
# int64 labels, split 80/20 with stratification.
import matplotlib.pyplot as plt
import numpy as np

import minidl as mdl
from minidl import layers

(X_train, y_train), (X_test, y_test) = mdl.data.load_digits(test_size=0.2, seed=0)
print("train", X_train.shape, X_train.dtype, " test", X_test.shape, " labels", y_train[:10])

fig, axes = plt.subplots(1, 10, figsize=(8, 1.2))
for ax, image, label in zip(axes, X_train, y_train):
    ax.imshow(image[0], cmap="gray_r")
    ax.set_title(str(label))
    ax.axis("off")

# %%
# The model
# ---------
# Two blocks of 3x3 convolution, ReLU and 2x2 max pooling, then one Dense layer to 10 logits:
# the architecture of ``mdl.models.reference_cnn``, spelled out. The ``rng`` makes the initial
# weights reproducible; the summary follows one sample's shape through the layers.
rng = np.random.default_rng(0)
model = mdl.Sequential(
    layers.Conv2D(1, 16, 3, padding="same", rng=rng), layers.ReLU(), layers.MaxPool2D(2),
    layers.Conv2D(16, 32, 3, padding="same", rng=rng), layers.ReLU(), layers.MaxPool2D(2),
    layers.Flatten(), layers.Dense(32 * 2 * 2, 10, rng=rng),
)
print(model.summary((1, 8, 8)))

# %%
# Training
# --------
# Cross-entropy on the logits (the loss carries the 1/N of the batch mean; the layers never
# divide by the batch size), SGD with momentum, 20 epochs of 32-image batches. The
# ``NormHistory`` callback is opt-in: after every batch's backward pass it records the L2 norm
# of each parameter's gradient and of the parameter itself (one pass over the weights per batch;
# ``NormHistory(every=10)`` records every 10th batch).
trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(),
                      mdl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
norms = mdl.NormHistory()
history = trainer.fit(X_train, y_train, epochs=20, batch_size=32,
                      validation_data=(X_test, y_test), seed=0, progress=False,
                      callbacks=[norms])
print(trainer.evaluate(X_test, y_test))

# %%
# Learning curves
# ---------------
# ``history`` holds one value per epoch for each metric. The training loss is the mean over
# the epoch's batches while the weights changed; the validation numbers are measured after it.
# Every ``minidl.plot`` function returns its matplotlib figure, to adjust or save: here the loss
# axis becomes logarithmic.
fig = mdl.plot.learning_curves(history, metrics=["loss", "accuracy"])
fig.axes[0].set_yscale("log")

# %%
# Gradient and weight norms
# -------------------------
# ``norms.grad_norms`` and ``norms.weight_norms`` map each parameter's name (``"0.weight"`` is
# the first Conv2D's kernel, ``"7.bias"`` the Dense layer's bias) to one value per batch.
# The gradient norms say whether the error signal reaches a layer: here the first Conv2D's
# kernel gets gradients only a few times smaller than the Dense layer's, and all of them shrink
# (noisily, batch to batch) by one to two orders of magnitude as the loss falls, while the
# weight norms grow over the first epochs and then level off: every layer learns. A layer whose
# gradient norm sits orders of magnitude below the others (vanishing gradients, e.g. behind
# dead ReLUs) or that climbs until the loss becomes nan (exploding: lower the learning rate or
# clip with ``fit(..., clip_grad_norm=...)``) explains a network that does not learn, and a
# weight norm that stays flat shows a layer whose weights do not move.
mdl.plot.norms(norms)
print({name: f"{values[0]:.3f} -> {values[-1]:.4f}" for name, values in norms.grad_norms.items()})

# %%
# The first layer's filters
# -------------------------
# ``model[0].weight.data`` has PyTorch's layout (out_channels, in_channels, kh, kw) = (16, 1, 3, 3):
# sixteen 3x3 filters. Blue is negative, red positive, on one scale symmetric around 0 for all of them.
mdl.plot.filters(model)

# %%
# Feature maps of one digit
# -------------------------
# ``feature_maps`` runs the model on one input and shows one layer's output channels; ``layer``
# names the layer by its index in the Sequential, ``"1"`` being the first ReLU: every filter
# gives an 8x8 map. It runs the model in eval mode (inference: no cache for a backward pass) and
# leaves the model as it was.
print("the input: a", y_test[0])
mdl.plot.feature_maps(model, X_test[:1], layer="1")

# %%
# A Sequential can be indexed, and every layer can be called on its own: running the layers
# one by one shows what each produces: after the second block, 32 maps of 2x2 feed the Dense
# layer. Some of the maps above are blank: where a filter's response plus its bias is negative,
# the ReLU outputs 0. A channel that is 0 for every input is a *dead* ReLU: it passes no
# gradient back, so its filter no longer learns.
model.eval()
activations = [X_test[:1]]
for layer in model:
    activations.append(layer(activations[-1]))
print("shapes through the network:", [a.shape[1:] for a in activations])
first_relu = model[1](model[0](X_test))
print("first-ReLU channels that are 0 on every test digit:",
      np.flatnonzero(first_relu.max(axis=(0, 2, 3)) == 0))

# %%
# Confusion matrix
# ----------------
# Rows are the true classes, columns the predicted ones; the diagonal holds the right answers.
# ``trainer.predict`` returns the logits, one row per image; their arg-max is the predicted class.
y_pred = trainer.predict(X_test).argmax(axis=1)
print(f"test accuracy {np.mean(y_pred == y_test):.2%}")
mdl.plot.confusion_matrix(y_test, y_pred)

# %%
# The digits it gets wrong
# ------------------------
# Each one is titled "true→predicted".
mdl.plot.misclassified(X_test, y_test, y_pred)
wrong = np.flatnonzero(y_pred != y_test)
print(f"{len(wrong)} of {len(y_test)} test digits misclassified")

if "__file__" in globals():  # run as a script: the figures as PNGs next to it (sphinx-gallery shows them itself)
    mdl.plot.save_figures(__file__)

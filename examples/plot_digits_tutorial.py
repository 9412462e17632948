"""Tutorial: train the digits CNN and look inside it
==================================================

We train minidl's reference CNN on scikit-learn's 8x8 digits, then look at what it learned:
the learning curves, the first layer's filters, the feature maps one digit produces on its way
through the network, the confusion matrix and the digits it gets wrong.

Run from any folder:  python examples/plot_digits_tutorial.py  (about 2 s of training on one core)
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
# divide by the batch size), SGD with momentum, 20 epochs of 32-image batches.
trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(),
                      mdl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
history = trainer.fit(X_train, y_train, epochs=20, batch_size=32,
                      validation_data=(X_test, y_test), seed=0, progress=False)
print(trainer.evaluate(X_test, y_test))

# %%
# Learning curves
# ---------------
# ``history`` holds one value per epoch for each metric. The training loss is the mean over
# the epoch's batches while the weights changed; the validation numbers are measured after it.
# TODO(plot): mdl.plot.learning_curves(history)
epochs = np.arange(1, len(history["loss"]) + 1)
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.2))
ax_loss.plot(epochs, history["loss"], label="train")
ax_loss.plot(epochs, history["val_loss"], label="test")
ax_loss.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="loss")
ax_acc.plot(epochs, history["accuracy"], label="train")
ax_acc.plot(epochs, history["val_accuracy"], label="test")
ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
for ax in (ax_loss, ax_acc):
    ax.legend()
fig.tight_layout()

# %%
# The first layer's filters
# -------------------------
# ``model[0].weight.data`` has PyTorch's layout (out_channels, in_channels, kh, kw) = (16, 1, 3, 3):
# sixteen 3x3 filters. Blue is negative, red positive, on one symmetric scale per filter.
# TODO(plot): mdl.plot.filters(model)
weights = model[0].weight.data
fig, axes = plt.subplots(2, 8, figsize=(8, 2.2))
for ax, w in zip(axes.flat, weights[:, 0]):
    limit = np.abs(w).max()
    ax.imshow(w, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.axis("off")
fig.suptitle("Conv2D(1, 16, 3) filters")

# %%
# Feature maps of one digit
# -------------------------
# A Sequential can be indexed, and every layer can be called on its own: running the layers
# one by one shows what each produces. After the first ReLU every filter gives an 8x8 map;
# after the second block, 32 maps of 2x2 feed the Dense layer. ``eval()`` switches the model to
# inference (no cache for a backward pass).
# TODO(plot): mdl.plot.feature_maps(model, X_test[:1], layer=1)
model.eval()
x = X_test[:1]
activations = [x]
for layer in model:
    activations.append(layer(activations[-1]))
fig, axes = plt.subplots(2, 9, figsize=(9, 2.4))
axes[0, 0].imshow(x[0, 0], cmap="gray_r")
axes[0, 0].set_title(f"label {y_test[0]}")
for ax, fmap in zip(axes.flat[1:], activations[2][0]):  # the output of model[1], the first ReLU
    ax.imshow(fmap, cmap="viridis")
for ax in axes.flat:
    ax.axis("off")
fig.suptitle("the input and the first ReLU's 16 feature maps")
print("shapes through the network:", [a.shape[1:] for a in activations])

# %%
# Confusion matrix
# ----------------
# Rows are the true classes, columns the predicted ones; the diagonal holds the right answers.
# TODO(plot): mdl.plot.confusion_matrix(y_test, y_pred)
y_pred = trainer.predict(X_test).argmax(axis=1)
cm = np.zeros((10, 10), dtype=int)
np.add.at(cm, (y_test, y_pred), 1)
fig, ax = plt.subplots(figsize=(4.5, 4))
ax.imshow(cm, cmap="Blues")
for (i, j), count in np.ndenumerate(cm):
    if count:
        ax.text(j, i, count, ha="center", va="center", color="white" if i == j else "black", fontsize=8)
ax.set(xlabel="predicted", ylabel="true", xticks=range(10), yticks=range(10),
       title=f"test accuracy {np.mean(y_pred == y_test):.2%}")

# %%
# The digits it gets wrong
# ------------------------
# TODO(plot): mdl.plot.misclassified(X_test, y_test, y_pred)
wrong = np.flatnonzero(y_pred != y_test)
fig, axes = plt.subplots(1, max(len(wrong), 1), figsize=(1.2 * max(len(wrong), 1), 1.6), squeeze=False)
for ax, i in zip(axes[0], wrong):
    ax.imshow(X_test[i, 0], cmap="gray_r")
    ax.set_title(f"{y_test[i]} -> {y_pred[i]}", fontsize=9)
for ax in axes[0]:
    ax.axis("off")
print(f"{len(wrong)} of {len(y_test)} test digits misclassified")

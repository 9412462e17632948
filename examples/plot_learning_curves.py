"""Learning curves: what the learning rate does
=============================================

The same reference CNN, the same data, the same seeds, trained with SGD (momentum 0.9) at three
learning rates for 10 epochs each. The curves show the usual picture: too small a step learns
slowly, a good one converges in a few epochs, too large a one jumps around. Because every run
starts from the same weights and sees the same batches (``fit``'s ``seed``), the learning rate is
the only difference between the curves.

Run from any folder:  python examples/plot_learning_curves.py  (about 3 s on one core);
it saves its figures as PNG files next to itself and prints their paths.
"""
import matplotlib.pyplot as plt
import numpy as np

import minidl as mdl

(X_train, y_train), (X_test, y_test) = mdl.data.load_digits(test_size=0.2, seed=0)

histories = {}
for lr in (0.005, 0.05, 0.3):
    model = mdl.models.reference_cnn(rng=np.random.default_rng(0))  # identical initial weights
    trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(),
                          mdl.optim.SGD(model.parameters(), lr=lr, momentum=0.9))
    histories[lr] = trainer.fit(X_train, y_train, epochs=10, batch_size=32,
                                validation_data=(X_test, y_test), seed=0, progress=False)
    print(f"lr={lr:<6} final train loss {histories[lr]['loss'][-1]:.4f}  "
          f"test accuracy {histories[lr]['val_accuracy'][-1]:.2%}")

# %%
# One row per learning rate, drawn by ``mdl.plot.learning_curves`` on the row's two Axes; the
# panels of a column share their y axis, so the rows compare directly.
fig, axes = plt.subplots(len(histories), 2, figsize=(9, 2.6 * len(histories)), sharex=True, sharey="col")
for row, (lr, history) in zip(axes, histories.items()):
    mdl.plot.learning_curves(history, metrics=["loss", "accuracy"], ax=row)
    row[0].set_title(f"lr={lr}: loss")
    row[1].set_title(f"lr={lr}: accuracy")
for ax in axes[:-1].flat:
    ax.set_xlabel("")  # the x axis is shared: "epoch" once, under the last row
axes[0, 0].set_yscale("log")  # shared by the loss column
fig.tight_layout()

if "__file__" in globals():  # run as a script: the figures as PNGs next to it (sphinx-gallery shows them itself)
    mdl.plot.save_figures(__file__)

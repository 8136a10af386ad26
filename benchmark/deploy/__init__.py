"""Using a trained model outside its run: predict on new raw scans, export a bundle.

    model.py     TrainedModel: a finished part or a bundle, as one object
    recipe.py    how the training data was prepared, so a raw scan can follow it
    native.py    a raw scan through `data prepare` onto the model's grid, and maps back
    predict.py   `benchmark predict`: maps and lesion masks on the input's own grid
    overlay.py   the PNG montage of a prediction
    bundle.py    `benchmark export`: safetensors weights + bundle.json + model card
    card.py      the model card (README.md of a bundle)
    evaluate.py  `benchmark evaluate BUNDLE`: a bundle on a data root's test sets
    cli.py       the predict and export sub-commands

docs/predict.md describes the commands and the bundle format.
"""

"""Feed-forward style transfer: stylising images, folders and huge images with a loaded style model."""

"""Label sets: ground truth and model predictions on catalog assets, stored as payload fields."""

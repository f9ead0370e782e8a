"""The motion prior: head-trajectory conditioning, the x0-predicting denoiser, checkpoints."""

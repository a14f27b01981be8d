"""HiFi-GAN training: config, losses, checkpoints, the step, the loop, validation and logs."""

"""Getting bundles onto boards: the serial link, the device agent and its A/B slots."""

"""Training the feed-forward networks: Johnson's transform network and the AdaIN decoder."""

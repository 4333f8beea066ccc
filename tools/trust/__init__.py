"""The reviewed catalogue's generator and the fitted estimators it is generated from."""

#!/bin/sh
# azd's prepackage hook for the trainer service (run in trainer/): put the project's code and the packaged
# model beside trainer/function_app.py, since azd packages this folder only. The copies are not committed.
set -eu
rm -rf shared model
cp -R ../shared ./shared
cp -R ../model ./model
find shared -name __pycache__ -type d -prune -exec rm -rf {} +

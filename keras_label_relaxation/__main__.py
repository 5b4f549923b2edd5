import sys

from keras_label_relaxation.cli import main

sys.exit(main())

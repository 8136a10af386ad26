from .method import *

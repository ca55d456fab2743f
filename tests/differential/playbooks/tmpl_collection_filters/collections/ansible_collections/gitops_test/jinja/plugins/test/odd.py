class TestModule(object):
    def tests(self):
        return {'odd': lambda n: int(n) % 2 == 1}

# Filters declared in a file of another name (as debops' parse_kv_items is).
def kv_pairs(mapping, sep='='):
    return sorted('%s%s%s' % (k, sep, v) for k, v in mapping.items())


def merge_items(items):
    out = {}
    for i in items:
        out.setdefault(i['name'], {}).update(i)
    return [out[k] for k in sorted(out)]


class FilterModule(object):
    def filters(self):
        return {'kv_pairs': kv_pairs, 'merge_items': merge_items}

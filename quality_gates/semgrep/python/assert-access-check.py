def delete_user(user, target):
    # ruleid: assert-access-check
    assert user.is_admin, "admins only"
    # ruleid: assert-access-check
    assert user.has_perm("delete_user")
    target.delete()


def add(a, b):
    # ok: assert-access-check
    assert isinstance(a, int)
    return a + b

"""The API and the demo accept exactly the media of the one table (emotune/media/kinds.py)."""

import pytest

from emotune.media.kinds import ALL_EXT, MEDIA_EXT, accepted_for, media_kind
from emotune.serve.api import APIError, _media_field
from emotune.serve.demo import UploadError, check_upload


@pytest.mark.parametrize("ext", sorted(ALL_EXT))
def test_every_extension_of_the_table_is_accepted_by_the_api_and_the_demo(tmp_path, ext):
    kind = media_kind(f"clip{ext.upper()}")  # case does not matter
    assert kind is not None and ext in MEDIA_EXT[kind]
    assert _media_field(f"clip{ext}") == (kind, ext)
    path = tmp_path / f"clip{ext}"
    path.write_bytes(b"not really media")  # the type gate comes first; the content check after it
    for demo_input in ("audio", "video", "image"):
        if ext not in accepted_for(demo_input):
            continue
        try:
            check_upload(path, demo_input, max_bytes=1 << 20)
        except UploadError as exc:
            assert "is not accepted" not in str(exc), (demo_input, str(exc))


@pytest.mark.parametrize("name", ["notes.txt", "archive.zip", "noextension"])
def test_other_types_are_refused_by_both(tmp_path, name):
    with pytest.raises(APIError) as err:
        _media_field(name)
    assert err.value.status == 415
    path = tmp_path / name
    path.write_bytes(b"x")
    with pytest.raises(UploadError, match="is not accepted"):
        check_upload(path, "audio", max_bytes=1 << 20)


def test_a_video_is_accepted_where_audio_is_expected():
    assert MEDIA_EXT["video"] <= accepted_for("audio") and ".webm" in MEDIA_EXT["video"]

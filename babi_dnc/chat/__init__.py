"""Tell a trained model a story, line by line, and ask it questions (`babi-dnc chat`).

The story is fed exactly as one bAbI story is fed in training (`data.encode_story`): the same tokenizer,
lower case, '.' and '?' as words, and after every question its '-' answer slots. The recurrent state (the
DNC's controller state, memory, usage, links and read weightings; the LSTM's h and c) is carried from
line to line, so a story typed one sentence at a time gives the same numbers as the whole story fed at
once. The model's output at each '-' is one answer word; the chat shows the top words and their
probabilities.

Answer slots. In bAbI the number of '-' after a question is the number of answer words; the model never
chooses it, so the chat decides it for every question, first match wins:

  1. '-' typed right after the '?' ("What is Mary carrying? - -"): that many;
  2. a known bAbI answer (a --story file with answers, an /example question): its number of words;
  3. `/slots N`: N for every question until `/slots auto`;
  4. auto: 2 for path questions ("How do you go from the kitchen to the garden?": every task 19 answer
     has two directions, "n,e"), else 1, also for task 8's "What is X carrying?" (93% of its answers are
     one word; ask "What is X carrying? - -" for two).

The slots stay in the state after the answer, as in training. A line may hold several sentences and
questions; a line without final punctuation gets a '.'.

    replies.py   Answer and Reply, and their text
    session.py   StorySession: a line checked, fed with the state carried over, its questions answered
    commands.py  ChatSession: input lines and "/" commands, bAbI examples, the banner
    stories.py   story files (--story): fed line by line, graded
    terminal.py  the interactive loop and the printed answers of a story file

    session = ChatSession.from_run("runs/dnc-small")
    session.handle("Mary moved to the bathroom.")     # Reply(kind="fed")
    reply = session.handle("Where is Mary?")          # reply.answers[0].words == ["bathroom"]
    session.handle("/memory")                         # commands: /help lists them
    chat_loop(session, console)                       # the interactive loop (rich prompt or plain stdin)
    print_story_file(session, "story.txt", console)   # scripted: one answer per question, accuracy
"""

from ..data import story_lines
from .commands import COMMANDS, HELP, ChatSession, describe_run, load_test_stories
from .replies import Answer, Rejected, Reply, detokenize, format_answer, format_top, verdict
from .session import ChatConfig, StorySession, answer_slots, suggest
from .stories import StoryScore, find_story_file, is_babi_format, story_file_replies
from .terminal import chat_loop, print_story_file, render

__all__ = [
    "ChatConfig", "StorySession", "ChatSession", "COMMANDS", "HELP", "Answer", "Reply", "Rejected", "StoryScore",
    "answer_slots", "suggest", "detokenize", "format_top", "format_answer", "verdict", "describe_run",
    "load_test_stories", "story_lines", "is_babi_format", "find_story_file", "story_file_replies", "render",
    "chat_loop", "print_story_file",
]
